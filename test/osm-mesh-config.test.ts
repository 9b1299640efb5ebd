import { Testing } from 'cdk8s';
import { OsmMeshConfig } from '../src';
import { validateObjects } from './mesh/validate';

describe('OsmMeshConfig', () => {
  test('defaults: policies on, passthrough off, osm-mesh-config in osm-system (snapshot)', () => {
    const chart = Testing.chart();
    const mc = new OsmMeshConfig(chart, 'MeshConfig');
    const objs = Testing.synth(chart);
    expect(objs).toMatchSnapshot();
    expect(objs).toEqual([{
      apiVersion: 'config.openservicemesh.io/v1alpha2',
      kind: 'MeshConfig',
      metadata: { name: 'osm-mesh-config', namespace: 'osm-system' },
      spec: { traffic: { enableEgress: false }, featureFlags: { enableEgressPolicy: true } },
    }]);
    expect([mc.enableEgress, mc.enableEgressPolicy]).toEqual([false, true]);
    expect(mc.node.defaultChild?.node.id).toBe('Resource');
  });

  test('the switches, name and namespace are configurable', () => {
    const chart = Testing.chart();
    new OsmMeshConfig(chart, 'MeshConfig', { enableEgress: true, enableEgressPolicy: false, name: 'mesh', namespace: 'osm' });
    const [mc] = Testing.synth(chart);
    expect(mc.metadata).toEqual({ name: 'mesh', namespace: 'osm' });
    expect(mc.spec).toEqual({ traffic: { enableEgress: true }, featureFlags: { enableEgressPolicy: false } });
  });

  test('throws when the name or namespace is invalid', () => {
    expect(() => new OsmMeshConfig(Testing.chart(), 'MeshConfig', { name: 'Mesh Config', namespace: 'osm.system' }))
      .toThrow(/OsmMeshConfig "test\/MeshConfig": 2 problems:[\s\S]*'name' "Mesh Config"[\s\S]*'namespace' "osm.system"/);
  });

  test('passes the strict validator', () => {
    const chart = Testing.chart();
    new OsmMeshConfig(chart, 'MeshConfig');
    const result = validateObjects(Testing.synth(chart));
    expect(result.messages).toEqual([]);
    expect(result).toMatchObject({ passed: 1, failed: 0 });
  });
});
