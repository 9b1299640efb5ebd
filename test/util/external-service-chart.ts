// Test helper for the mesh renderer tests: one ExternalService "svc" rendered by one renderer.
import { Testing } from 'cdk8s';
import { ExternalService, ExternalServiceProps } from '../../src';

type Renderer = NonNullable<ExternalServiceProps['renderers']>[number];

/** The objects a chart with ExternalService "svc" (`props`, rendered only by `renderer`) synthesises. */
export function synthExternalService(props: ExternalServiceProps, renderer: Renderer): any[] {
  const chart = Testing.chart();
  new ExternalService(chart, 'svc', { ...props, renderers: [renderer] });
  return Testing.synth(chart);
}
