// Value classes that say what a Gateway API route rule matches: paths, methods, headers, query
// parameters and gRPC methods. Values are checked by the route that uses them, so every problem
// is reported with the route's construct path.

/** How an HTTP path is compared. @see https://gateway-api.sigs.k8s.io/reference/spec/#pathmatchtype */
export enum PathMatchType {
  /** The whole path, case-sensitive. */
  EXACT = 'Exact',
  /** Path prefix by whole segments: '/get' matches '/get' and '/get/x', not '/getter'. */
  PATH_PREFIX = 'PathPrefix',
  /** A regular expression (RE2 syntax: no lookaround, no backreferences). */
  REGULAR_EXPRESSION = 'RegularExpression',
}

/** How a header, query parameter or gRPC name is compared. */
export enum ValueMatchType {
  EXACT = 'Exact',
  /** RE2 syntax: no lookaround, no backreferences. */
  REGULAR_EXPRESSION = 'RegularExpression',
}

/** HTTP request methods an HTTPRoute can match (the Gateway API's closed set). */
export enum HttpMethod {
  GET = 'GET',
  HEAD = 'HEAD',
  POST = 'POST',
  PUT = 'PUT',
  DELETE = 'DELETE',
  CONNECT = 'CONNECT',
  OPTIONS = 'OPTIONS',
  TRACE = 'TRACE',
  PATCH = 'PATCH',
}

/**
 * A request path condition of an HTTPRoute rule.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#httppathmatch
 */
export class PathMatch {
  /** The path must equal `path` (absolute, starting with '/'). */
  public static exact(path: string): PathMatch {
    return new PathMatch(PathMatchType.EXACT, path);
  }

  /** The path must start with `path`, compared segment by segment ('/api' does not match '/apis'). */
  public static prefix(path: string): PathMatch {
    return new PathMatch(PathMatchType.PATH_PREFIX, path);
  }

  /** The path must match `pattern` (RE2 syntax; the egress proxy anchors it to the whole path). */
  public static regex(pattern: string): PathMatch {
    return new PathMatch(PathMatchType.REGULAR_EXPRESSION, pattern);
  }

  private constructor(
    /** How the path is compared. */
    public readonly type: PathMatchType,
    /** The path, prefix or pattern. */
    public readonly value: string,
  ) {}
}

/**
 * A request header condition. Header names compare case-insensitively.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#httpheadermatch
 */
export class HeaderMatch {
  /** Header `name` must equal `value`. */
  public static exact(name: string, value: string): HeaderMatch {
    return new HeaderMatch(ValueMatchType.EXACT, name, value);
  }

  /** Header `name` must match `pattern` (RE2 syntax). */
  public static regex(name: string, pattern: string): HeaderMatch {
    return new HeaderMatch(ValueMatchType.REGULAR_EXPRESSION, name, pattern);
  }

  private constructor(
    public readonly type: ValueMatchType,
    public readonly name: string,
    public readonly value: string,
  ) {}
}

/**
 * A query parameter condition (HTTPRoute only). Names compare case-sensitively.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#httpqueryparammatch
 */
export class QueryParamMatch {
  /** Parameter `name` must equal `value`. */
  public static exact(name: string, value: string): QueryParamMatch {
    return new QueryParamMatch(ValueMatchType.EXACT, name, value);
  }

  /** Parameter `name` must match `pattern` (RE2 syntax). */
  public static regex(name: string, pattern: string): QueryParamMatch {
    return new QueryParamMatch(ValueMatchType.REGULAR_EXPRESSION, name, pattern);
  }

  private constructor(
    public readonly type: ValueMatchType,
    public readonly name: string,
    public readonly value: string,
  ) {}
}

/** The gRPC service and/or method a GRPCRoute match names; at least one of them. */
export interface GrpcMethodMatchOptions {
  /**
   * Fully qualified service name, e.g. `helloworld.Greeter`.
   * @default - any service
   */
  readonly service?: string;
  /**
   * Method name, e.g. `SayHello`.
   * @default - any method
   */
  readonly method?: string;
}

/**
 * A gRPC method condition of a GRPCRoute rule.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#grpcmethodmatch
 */
export class GrpcMethodMatch {
  /** Service and/or method must equal the given names. */
  public static exact(options: GrpcMethodMatchOptions): GrpcMethodMatch {
    return new GrpcMethodMatch(ValueMatchType.EXACT, options.service, options.method);
  }

  /** Service and/or method must match the given patterns (RE2 syntax). */
  public static regex(options: GrpcMethodMatchOptions): GrpcMethodMatch {
    return new GrpcMethodMatch(ValueMatchType.REGULAR_EXPRESSION, options.service, options.method);
  }

  private constructor(
    public readonly type: ValueMatchType,
    public readonly service?: string,
    public readonly method?: string,
  ) {}
}
