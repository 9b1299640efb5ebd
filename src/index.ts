// Public API: re-exports of the constructs and their props and value classes only.
export {};
export * from './dns-rewrite';
