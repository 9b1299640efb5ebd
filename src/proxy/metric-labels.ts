// The parent, route and hostname labels every request metric carries (Linkerd's outbound route
// labels), shared by the metric families in metrics.ts and operate-metrics.ts.

export const PARENT_ROUTE_LABELS = [
  'parent_group', 'parent_kind', 'parent_namespace', 'parent_name', 'parent_port', 'parent_section_name',
  'route_group', 'route_kind', 'route_namespace', 'route_name', 'hostname',
] as const;

/** Parent, route and hostname labels, built once per (port, route, hostname) and reused. */
export type BaseLabels = Readonly<Record<typeof PARENT_ROUTE_LABELS[number], string>>;
