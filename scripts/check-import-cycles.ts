// Fails when the modules under src/ import each other in a loop, counting `import type` too:
// a type-only loop still ties the files together for the next change, and eslint's
// import/no-cycle skips type imports by design. Usage: check-import-cycles [dir] (default src).
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

/** Every .ts file under `dir` (declaration files left out). */
function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(full));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(full);
  }
  return out.sort();
}

/** The graph: file → the files under `root` it imports or re-exports from (value or type). */
export function importGraph(root: string): Map<string, string[]> {
  const files = sourceFiles(root).map((f) => path.resolve(f));
  const inRoot = new Set(files);
  const options: ts.CompilerOptions = { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16, resolveJsonModule: true };
  const graph = new Map<string, string[]>();
  for (const file of files) {
    // preProcessFile lists every import, export-from, import() and require() of a file, `import type` included.
    const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
    const targets = new Set<string>();
    for (const ref of info.importedFiles) {
      const resolved = ts.resolveModuleName(ref.fileName, file, options, ts.sys).resolvedModule?.resolvedFileName;
      if (resolved && inRoot.has(path.resolve(resolved))) targets.add(path.resolve(resolved));
    }
    graph.set(file, [...targets].sort());
  }
  return graph;
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
export function importCycles(graph: Map<string, string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

/** One shortest loop through `start` inside its component, to show how the files meet. */
function loopThrough(start: string, graph: Map<string, string[]>, component: Set<string>): string[] {
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!component.has(w)) continue;
      if (w === start) {
        const loop = [start];
        for (let u = v; u !== start; u = previous.get(u)!) loop.splice(1, 0, u);
        return [...loop, start];
      }
      if (!previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start];
}

if (require.main === module) {
  const root = path.resolve(process.argv[2] ?? 'src');
  const graph = importGraph(root);
  const cycles = importCycles(graph);
  const rel = (f: string) => path.relative(process.cwd(), f);
  if (cycles.length === 0) {
    console.log(`import cycles: none among ${graph.size} modules under ${rel(root) || '.'}`);
  } else {
    for (const component of cycles) {
      const loop = loopThrough(component[0], graph, new Set(component));
      console.error(`import cycle among ${component.length} modules: ${component.map(rel).join(', ')}`);
      console.error(`  for example: ${loop.map(rel).join(' -> ')}`);
    }
    console.error('Modules must not import each other in a loop (type imports count): meet through an interface in the module both sides already import.');
    process.exitCode = 1;
  }
}
