import { cdk8s, Component, github, javascript, release } from 'projen';

// The proxy image: the release pushes it here, tagged with the package version, and
// ProxyImage.default() reads the same field from package.json at synth time.
const PROXY_IMAGE_REPOSITORY = 'ghcr.io/maintainers/cdk8s-egress-proxy';
// The platforms the release builds the image for (one multi-platform manifest).
const PROXY_IMAGE_PLATFORMS = 'linux/amd64,linux/arm64';

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
  // Node 20 is end of life; 22 is the oldest LTS still supported (the image runs 24, see Dockerfile).
  minNodeVersion: '22.11.0',
  workflowNodeVersion: '24.x',

  // Python users of cdk8s get the constructs too: `jsii-pacmak --targets python`.
  publishToPypi: {
    distName: 'cdk8s-egress',
    module: 'cdk8s_egress',
  },

  // The release workflow (.github/workflows/release.yml) is the only workflow projen writes, and it
  // runs only when a maintainer starts it (Actions > release > Run workflow); CI is .ci/run.
  github: true,
  githubOptions: { mergify: false, pullRequestLint: false },
  buildWorkflow: false,
  depsUpgradeOptions: { workflow: false },
  pullRequestTemplate: false,
  stale: false,
  release: true,
  releaseTrigger: release.ReleaseTrigger.workflowDispatch(),
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,

  peerDeps: ['cdk8s-plus-28@^2.5.6'],
  // The manifest validator (src/validation/) ships to users: jsii requires plain npm runtime
  // dependencies to be bundled into the package.
  bundledDeps: ['ajv@^8.20.0', 'kubernetes-models@^4.5.1', 'yaml@^2.9.1'],
  devDeps: [
    '@types/node@^20',
    'cdk8s-plus-28@2.5.6',
    'cdk8s-cli@2.207.60',
    // The proxy's runtime: bundled by esbuild into assets/proxy/, never loaded by the library.
    'undici@^7.30.2',
    'prom-client@^15.1.3',
    'pino@^10.4.0',
    'esbuild@^0.28.2',
    // RE2 syntax authority for route regexes at config load (matching stays on RegExp, 7.7x faster:
    // bench/regex-engines.ts).
    're2js@^2.10.0',
    // Tests: gRPC peers.
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

// Lint also checks the shape of the repository: an import cycle in src/ fails it, type-only
// imports included (modules meet through interfaces such as IEgressGateway and IRouteParent;
// eslint's import/no-cycle skips type imports), and so does a commit subject over 72 characters
// among the commits made since that check was added.
// Added at pre-synthesis, after projen has rewritten the eslint task for its last lint pattern.
class RepositoryChecks extends Component {
  public preSynthesize(): void {
    const lint = project.eslint!.eslintTask;
    lint.exec('ts-node --project test/tsconfig.json scripts/check-import-cycles.ts src');
    lint.exec('bash scripts/check-commit-subjects.sh');
  }
}
new RepositoryChecks(project);

// jsii looks for a support list on the internet and prints a Node 20 banner; both are noise offline.
project.tasks.addEnvironment('JSII_SILENCE_SUPPORT_WARNING', '1');
project.tasks.addEnvironment('JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION', '20');

// The proxy: one bundled file, shipped in the npm package and copied into the image.
// The target is the oldest Node that runs the bundle, not the image's: the test suite also runs it
// on the development machine's Node (20 here); the image runs the Dockerfile's NODE_VERSION (24).
project.bundler.addBundle('./src/proxy/main.ts', {
  platform: 'node',
  target: 'node20',
  outfile: 'index.js',
  sourcemap: false,
  externals: [],
});
// The proxy's explain engine, for EgressPolicy in the library: lib/proxy/ stays out of the
// package, so the library loads this one file (pure: no sockets, files or DNS).
project.bundler.addBundle('./src/proxy/explain.ts', {
  platform: 'node',
  target: 'node20',
  outfile: 'index.js',
  sourcemap: false,
  externals: [],
});
for (const p of ['/lib/proxy/', '/bench/', '/examples/', '/.ci/', '/dist/', '/scripts/', '/.image/', '/.github/']) {
  project.addPackageIgnore(p);
}
project.addPackageIgnore('!/assets/proxy/main/index.js');
project.addPackageIgnore('!/assets/proxy/explain/index.js');
project.addPackageIgnore('!/Dockerfile');
// Tests spawn the bundled proxy (SIGTERM, --check-config, image smoke), so bundle first.
project.testTask.prependSpawn(project.tasks.tryFind('bundle')!);
// And they run it on the image's Node as well as this one: fetched (pinned, cached) before the
// tests, which themselves never leave loopback.
project.testTask.prependSpawn(project.addTask('fetch-node', {
  description: "Fetch the image's Node release into .image/node (pinned integrity; cached, so offline after the first time)",
  exec: 'bash scripts/fetch-node.sh',
}));

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
  description: 'Side-by-side benchmark: nginx, a naive Node proxy and this proxy under wrk (loopback only; needs wrk and nginx)',
  exec: 'ts-node --project test/tsconfig.json bench/side-by-side.ts',
});
project.addTask('bench:direct', {
  description: 'Closed-loop benchmark: undici straight to a local HTTPS upstream versus through the proxy (loopback only)',
  exec: 'ts-node --project test/tsconfig.json bench/proxy-bench.ts',
});

project.addTask('bench:regex', {
  description: 'Micro-benchmark: route regexes on RegExp (compileRegex) against re2js, on the route-match tables',
  exec: 'ts-node --project test/tsconfig.json bench/regex-engines.ts',
  receiveArgs: true,
});

project.addTask('bench:metrics', {
  description: 'Micro-benchmark: one request\'s metric updates on prom-client against the series families (src/proxy/series.ts)',
  exec: 'ts-node --project test/tsconfig.json bench/metric-updates.ts',
  receiveArgs: true,
});

project.addTask('image', {
  description: 'Build the proxy container image (docker where there is one, buildah otherwise)',
  exec: 'bash scripts/build-image.sh',
});

// ProxyImage.default() = <proxyImage.repository>:<version>, both read from package.json.
project.package.addField('proxyImage', { repository: PROXY_IMAGE_REPOSITORY });

// `npx projen package` (and `build`) makes the npm tarball everywhere, as in CI: the Python wheel
// needs setuptools from PyPI, so it is its own step (`npx projen package:python`, the release's
// PyPI job) instead of failing a local build that has no PyPI.
const packageTask = project.tasks.tryFind('package')!;
packageTask.reset();
packageTask.spawn(project.tasks.tryFind('package:js')!);

// The Python binding: sources generated by jsii-pacmak and byte-compiled (CI; wheels need PyPI).
project.addTask('python-binding', {
  description: 'Generate the jsii Python binding into dist/python-src/ and byte-compile it',
  exec: 'bash scripts/python-binding.sh',
});

// The image job of the release: after the build job, before npm and PyPI publish, so that no
// published version of the library has a default image that does not exist yet. It builds the
// bundle shipped in the npm tarball (the release artifact) for every platform and pushes
// <repository>:<version>. Registry: GHCR with the workflow's token.
project.release!.addJobs({
  release_image: {
    name: 'Publish the proxy image',
    needs: ['release'],
    runsOn: ['ubuntu-latest'],
    if: "needs.release.outputs.tag_exists != 'true' && needs.release.outputs.latest_commit == github.sha",
    permissions: { contents: github.workflows.JobPermission.READ, packages: github.workflows.JobPermission.WRITE },
    env: {
      IMAGE_REPOSITORY: PROXY_IMAGE_REPOSITORY,
      PLATFORM: PROXY_IMAGE_PLATFORMS,
    },
    steps: [
      github.WorkflowSteps.checkout(),
      github.WorkflowSteps.downloadArtifact({
        name: 'Download build artifacts',
        with: { artifactIds: ['${{ needs.release.outputs.artifact_id }}'], path: 'dist' },
      }),
      { name: 'Set up QEMU', uses: 'docker/setup-qemu-action@v3' },
      { name: 'Set up Docker Buildx', uses: 'docker/setup-buildx-action@v3' },
      {
        name: 'Log in to the registry',
        uses: 'docker/login-action@v3',
        with: { registry: 'ghcr.io', username: '${{ github.actor }}', password: '${{ secrets.GITHUB_TOKEN }}' },
      },
      {
        name: 'Build and push the image',
        if: '${{ !inputs.dry_run }}',
        run: 'bash scripts/release-image.sh dist',
      },
      {
        name: 'Build the image (dry run, not pushed)',
        if: '${{ inputs.dry_run }}',
        run: 'PUSH=false bash scripts/release-image.sh dist',
      },
    ],
  },
});
// npm and PyPI publish only once the image of the same version is in the registry.
const releaseWorkflow = project.github!.tryFindWorkflow('release')!;
for (const job of ['release_npm', 'release_pypi']) {
  releaseWorkflow.file!.addOverride(`jobs.${job}.needs`, ['release', 'release_image']);
}

project.synth();
