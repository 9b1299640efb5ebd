// Public API: re-exports of the constructs and their props and value classes only.
export {};
export * from './dns-rewrite';
export * from './egress-gateway';
export * from './external-service';
export * from './proxy-image';
export * from './tls';
export * from './traffic-policy';
