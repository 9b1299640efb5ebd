// Public API: re-exports of the constructs and their props and value classes only.
export {};
export * from './dns-rewrite';
export * from './egress-gateway';
export * from './egress-network';
export * from './http-route';
export * from './grpc-route';
export * from './tls-route';
export * from './tcp-route';
export * from './route-match';
export * from './route-filter';
export * from './route-backend';
export * from './route-retry';
export * from './route-api-version';
export * from './external-service';
export * from './proxy-image';
export * from './tls';
export * from './traffic-policy';
export * from './egress-lockdown';
