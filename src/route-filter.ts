// Value classes for the Gateway API filters Linkerd applies on egress routes: request and
// response header modifiers (HTTP and gRPC) and request redirects (HTTP only).

/** The filter types Linkerd implements for routes (RequestMirror, URLRewrite and ExtensionRef it rejects). */
export enum RouteFilterType {
  REQUEST_HEADER_MODIFIER = 'RequestHeaderModifier',
  RESPONSE_HEADER_MODIFIER = 'ResponseHeaderModifier',
  REQUEST_REDIRECT = 'RequestRedirect',
}

/** Header edits. Names compare case-insensitively; each name may appear once across set/add/remove. */
export interface HeaderModifierOptions {
  /**
   * Headers to set, replacing any value the message already has.
   * @default - none
   */
  readonly set?: { [name: string]: string };
  /**
   * Headers to add, keeping values the message already has.
   * @default - none
   */
  readonly add?: { [name: string]: string };
  /**
   * Header names to remove.
   * @default - none
   */
  readonly remove?: string[];
}

/** Scheme of a redirect target. */
export enum RedirectScheme {
  HTTP = 'http',
  HTTPS = 'https',
}

/** How a redirect rewrites the path. */
export enum RedirectPathType {
  /** Replace the whole path. */
  REPLACE_FULL_PATH = 'ReplaceFullPath',
  /** Replace the part the rule's single PathPrefix match matched. */
  REPLACE_PREFIX_MATCH = 'ReplacePrefixMatch',
}

/** The path part of a redirect. @see https://gateway-api.sigs.k8s.io/reference/spec/#httppathmodifier */
export class RedirectPath {
  /** Redirect to exactly `path`. */
  public static replaceFullPath(path: string): RedirectPath {
    return new RedirectPath(RedirectPathType.REPLACE_FULL_PATH, path);
  }

  /** Swap the matched prefix for `prefix` (the rule needs exactly one PathPrefix match). */
  public static replacePrefixMatch(prefix: string): RedirectPath {
    return new RedirectPath(RedirectPathType.REPLACE_PREFIX_MATCH, prefix);
  }

  private constructor(public readonly type: RedirectPathType, public readonly value: string) {}
}

/** Where a RequestRedirect filter sends the client. Unset parts keep the request's own. */
export interface RequestRedirectOptions {
  /**
   * Scheme of the Location.
   * @default - the request's scheme
   */
  readonly scheme?: RedirectScheme;
  /**
   * Host of the Location (a DNS name, no wildcard).
   * @default - the request's host
   */
  readonly hostname?: string;
  /**
   * Port of the Location.
   * @default - the scheme's well-known port
   */
  readonly port?: number;
  /**
   * Path of the Location.
   * @default - the request's path
   */
  readonly path?: RedirectPath;
  /**
   * 301 (moved permanently) or 302 (found). The egress proxy implements these two.
   * @default 302
   */
  readonly statusCode?: number;
}

/**
 * A filter of a route rule.
 * @see https://gateway-api.sigs.k8s.io/reference/spec/#httproutefilter
 * @see https://linkerd.io/2/reference/httproute/
 */
export class RouteFilter {
  /** Edit request headers before the request leaves (HTTPRoute and GRPCRoute). */
  public static requestHeaderModifier(options: HeaderModifierOptions): RouteFilter {
    return new RouteFilter(RouteFilterType.REQUEST_HEADER_MODIFIER, options, undefined);
  }

  /** Edit response headers before the client sees them (HTTPRoute and GRPCRoute). */
  public static responseHeaderModifier(options: HeaderModifierOptions): RouteFilter {
    return new RouteFilter(RouteFilterType.RESPONSE_HEADER_MODIFIER, options, undefined);
  }

  /** Answer with a redirect instead of forwarding (HTTPRoute only; the rule must have no backends). */
  public static requestRedirect(options: RequestRedirectOptions): RouteFilter {
    return new RouteFilter(RouteFilterType.REQUEST_REDIRECT, undefined, options);
  }

  private constructor(
    public readonly type: RouteFilterType,
    /** Header edits, for the two header modifier types. */
    public readonly headerModifier?: HeaderModifierOptions,
    /** Redirect target, for REQUEST_REDIRECT. */
    public readonly redirect?: RequestRedirectOptions,
  ) {}
}
