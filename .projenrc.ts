import { cdk8s, javascript } from 'projen';

const project = new cdk8s.ConstructLibraryCdk8s({
  name: 'cdk8s-egress',
  description: 'cdk8s constructs and a TLS-originating egress proxy: visible, controlled, reliable and safe calls from Kubernetes workloads to third-party APIs.',
  author: 'cdk8s-egress maintainers',
  authorAddress: 'maintainers@users.noreply.h-seed-df64dba7.example',
  repositoryUrl: 'https://github.com/maintainers/cdk8s-egress.git',
  defaultReleaseBranch: 'main',
  keywords: ['cdk8s', 'egress', 'kubernetes', 'linkerd', 'kuma', 'osm', 'gateway-api', 'proxy'],

  cdk8sVersion: '2.70.0',
  constructsVersion: '10.4.0',
  jsiiVersion: '~6.0.0',
  typescriptVersion: '~5.9.0',
  minNodeVersion: '20.18.1',

  github: false,
  release: false,
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,

  peerDeps: ['cdk8s-plus-28@^2.5.6'],
  devDeps: [
    '@types/node@^20',
    'cdk8s-plus-28@2.5.6',
    'cdk8s-cli@2.207.60',
    // The proxy's runtime: bundled by esbuild into assets/proxy/, never loaded by the library.
    'undici@^7.30.2',
    'prom-client@^15.1.3',
    'pino@^10.4.0',
    'esbuild@^0.28.2',
    // Tests: YAML parsing of synthesised output, gRPC peers.
    'yaml@^2.9.1',
    '@grpc/grpc-js@^1.14.7',
    // Tests: every PromQL expression of the shipped alerts and dashboard parses.
    '@prometheus-io/lezer-promql@^0.315.0',
  ],

  jestOptions: {
    // A snapshot that changed is a failure to look at, never something the test run rewrites.
    updateSnapshot: javascript.UpdateSnapshot.NEVER,
    jestConfig: {
      testTimeout: 30_000,
      // Real-socket tests share two cores; run files in parallel but not too many at once.
      maxWorkers: 2,
      coverageProvider: 'v8',
    },
  },
  tsconfigDev: {
    compilerOptions: {
      lib: ['es2022'],
    },
    include: ['../src/**/*.ts', '../bench/**/*.ts', '../examples/**/*.ts', '../scripts/**/*.ts'],
  },
  gitignore: ['/assets/proxy/', '/dist/', '/.image/'],
});

// jest and the eslint import resolver use unrs-resolver, whose optional per-platform bindings
// must all be in the lock for `npm ci`; 1.12.2 is the newest release with a binding for every
// platform on the registry this project installs from.
project.package.addField('overrides', { 'unrs-resolver': '1.12.2' });

// jsii looks for a support list on the internet and prints a Node 20 banner; both are noise offline.
project.tasks.addEnvironment('JSII_SILENCE_SUPPORT_WARNING', '1');
project.tasks.addEnvironment('JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION', '20');

// The proxy: one bundled file, shipped in the npm package and copied into the image.
project.bundler.addBundle('./src/proxy/main.ts', {
  platform: 'node',
  target: 'node20',
  outfile: 'index.js',
  sourcemap: false,
  externals: [],
});
for (const p of ['/lib/proxy/', '/bench/', '/examples/', '/.ci/', '/dist/', '/scripts/']) {
  project.addPackageIgnore(p);
}
project.addPackageIgnore('!/assets/proxy/main/index.js');
project.addPackageIgnore('!/Dockerfile');
// Tests spawn the bundled proxy (SIGTERM, --check-config, image smoke), so bundle first.
project.testTask.prependSpawn(project.tasks.tryFind('bundle')!);

// The main job: synthesise every example app into dist/<example>/.
project.addTask('synth', {
  description: 'Synthesise every app in examples/ into dist/<example>/',
  exec: 'ts-node --project test/tsconfig.json scripts/synth-examples.ts',
});

project.addTask('dashboard', {
  description: 'Write dashboards/egress-gateway.json, the Grafana dashboard the package ships, from src/',
  exec: 'ts-node --project test/tsconfig.json scripts/write-dashboard.ts',
});

project.addTask('bench', {
  description: 'Run the proxy benchmarks (loopback only) and print a table',
  exec: 'ts-node --project test/tsconfig.json bench/proxy-bench.ts',
});

project.addTask('image', {
  description: 'Build the proxy container image (docker where there is one, buildah otherwise)',
  exec: 'bash scripts/build-image.sh',
});

project.synth();
