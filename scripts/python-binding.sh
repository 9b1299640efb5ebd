#!/usr/bin/env bash
# The jsii Python binding, checked as far as it can be without PyPI: generates the sources with
# `jsii-pacmak --code-only --targets python`, byte-compiles them, checks that every type of the
# jsii assembly has its Python class, and builds the source distribution when setuptools is there.
#
#   scripts/python-binding.sh        (or: npm run python-binding)
#
# Not done here, because it needs packages from PyPI: the wheel (jsii-pacmak's packaging step
# installs setuptools~=75.3 and build~=1.5 into a venv) and importing the module (the jsii
# runtime, typeguard, cattrs and publication). The release workflow's PyPI job does both.
#
# Environment:
#   PY_OUT   output directory (default dist/python-src)
#   PYTHON   interpreter (default python3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY_OUT=${PY_OUT:-dist/python-src}
# As projen's tasks do: no support-list lookup on the internet, no banner for the development Node.
export JSII_SILENCE_SUPPORT_WARNING=1 JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
PYTHON=${PYTHON:-python3}
log() { echo "python-binding: $*"; }
die() { echo "python-binding: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON is not installed"
module=$(node -p 'require("./package.json").jsii.targets.python.module')
dist_name=$(node -p 'require("./package.json").jsii.targets.python.distName')
[[ $module =~ ^[a-z_][a-z0-9_]*$ ]] || die "package.json jsii.targets.python.module \"$module\" is not a Python module name"

# The assembly: compile when .jsii is missing or older than any source file.
if [[ ! -s .jsii ]] || [[ -n $(find src -name '*.ts' -newer .jsii -print -quit) ]]; then
  log "compiling the jsii assembly (.jsii missing or older than src/)"
  npx projen compile >/dev/null
fi

start=$(date +%s)
rm -rf "$PY_OUT"
mkdir -p "$(dirname "$PY_OUT")"
npx jsii-pacmak --code-only --targets python --outdir "$PY_OUT" >/dev/null 2>"$PY_OUT.log" \
  || { cat "$PY_OUT.log" >&2; die "jsii-pacmak --targets python failed"; }
rm -f "$PY_OUT.log"
pkg_dir=$PY_OUT/python
src=$pkg_dir/src/$module
[[ -s $src/__init__.py ]] || die "jsii-pacmak wrote no $src/__init__.py"
log "generated $src in $(( $(date +%s) - start ))s ($(wc -l < "$src/__init__.py") lines)"

# Every file must be valid Python for the interpreter here (3.10 is the binding's floor).
"$PYTHON" -m compileall -q "$pkg_dir/src" >/dev/null || die "the generated sources do not compile"
log "byte-compiled with $("$PYTHON" --version 2>&1)"

# Every exported type of the assembly has its class in the binding (parsed, not imported: the jsii
# runtime it imports is on PyPI only).
"$PYTHON" - "$src/__init__.py" .jsii <<'EOF'
import ast, json, sys
init, assembly = sys.argv[1], sys.argv[2]
tree = ast.parse(open(init, encoding="utf8").read())
classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
types = json.load(open(assembly, encoding="utf8")).get("types", {})
# Only the root namespace: submodules would live in their own package directory.
names = sorted(t["name"] for t in types.values() if "namespace" not in t)
missing = [n for n in names if n not in classes]
if not names:
    sys.exit("the assembly exports no types")
if missing:
    sys.exit(f"the binding lacks {len(missing)} of {len(names)} types: {', '.join(missing)}")
print(f"python-binding: all {len(names)} exported types have a class in the binding")
EOF

# The README's Python example speaks the binding's API: every name it imports from the module is
# a class there, and every constructor and method it calls takes the keywords it passes.
"$PYTHON" - "$src/__init__.py" README.md "$module" <<'EOF'
import ast, re, sys
init, readme, module = sys.argv[1:]
classes = {n.name: n for n in ast.parse(open(init, encoding="utf8").read()).body if isinstance(n, ast.ClassDef)}
def params(cls, method):
    for n in classes[cls].body:
        if isinstance(n, ast.FunctionDef) and n.name == method:
            a = n.args
            return {x.arg for x in a.args + a.kwonlyargs}
    return None
blocks = re.findall(r"```python\n(.*?)```", open(readme, encoding="utf8").read(), re.S)
if not blocks:
    sys.exit("README.md has no Python example")
problems, checked = [], 0
for block in blocks:
    tree = ast.parse(block)
    ours = {a.asname or a.name: a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == module for a in n.names}
    problems += [f"imports {name}, which the binding lacks" for name in ours.values() if name not in classes]
    types = {}  # variable -> class it was constructed from
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and isinstance(n.value.func, ast.Name) and n.value.func.id in ours:
            types.update({t.id: ours[n.value.func.id] for t in n.targets if isinstance(t, ast.Name)})
    for n in ast.walk(tree):
        if not isinstance(n, ast.Call):
            continue
        if isinstance(n.func, ast.Name) and n.func.id in ours and ours[n.func.id] in classes:
            cls, method = ours[n.func.id], "__init__"
        elif isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name) and n.func.value.id in types:
            cls, method = types[n.func.value.id], n.func.attr
        else:
            continue
        accepted = params(cls, method)
        if accepted is None:
            problems.append(f"{cls}.{method}() does not exist")
            continue
        checked += 1
        problems += [f"{cls}.{method}() takes no keyword {k.arg!r}" for k in n.keywords if k.arg and k.arg not in accepted]
if problems:
    sys.exit("README.md's Python example does not match the binding: " + "; ".join(problems))
print(f"python-binding: README.md's Python example matches the binding ({checked} calls checked)")
EOF

# The JavaScript package embedded in the binding is what runs under Python (the jsii runtime unpacks
# it into node_modules/<name>): ProxyImage.default() must find its package.json there too.
embedded=("$src"/_jsii/*.jsii.tgz)
[[ -s ${embedded[0]} ]] || die "no embedded jsii package under $src/_jsii"
unpacked=$(mktemp -d "${TMPDIR:-/tmp}/python-binding.XXXXXX")
trap 'rm -rf "$unpacked"' EXIT
mkdir -p "$unpacked/node_modules/$dist_name"
tar -xzf "${embedded[0]}" -C "$unpacked/node_modules/$dist_name" --strip-components=1
for dep in cdk8s constructs cdk8s-plus-28; do ln -s "$PWD/node_modules/$dep" "$unpacked/node_modules/$dep"; done
image=$(node -e 'console.log(require(process.argv[1]).ProxyImage.default().uri)' "$unpacked/node_modules/$dist_name") \
  || die "ProxyImage.default() fails in the embedded package"
expected=$(node -p 'const p = require("./package.json"); p.proxyImage.repository + ":" + p.version.replace(/\+/g, "-")')
[[ $image == "$expected" ]] || die "ProxyImage.default() in the embedded package is $image, expected $expected"
log "embedded package: ProxyImage.default() = $image"

# The source distribution needs only setuptools (no wheel package, no network).
if "$PYTHON" -c 'import setuptools' 2>/dev/null; then
  (cd "$pkg_dir" && "$PYTHON" setup.py -q sdist --dist-dir ../sdist >/dev/null 2>../sdist.log) \
    || { cat "$PY_OUT/sdist.log" >&2; die "setup.py sdist failed"; }
  rm -f "$PY_OUT/sdist.log"
  sdist=$(ls "$PY_OUT"/sdist/*.tar.gz)
  # It must carry the module and the embedded JavaScript package the runtime loads.
  tar -tzf "$sdist" > "$PY_OUT/sdist.files"
  grep -q "/src/$module/__init__.py$" "$PY_OUT/sdist.files" || die "$sdist lacks $module/__init__.py"
  grep -q "/src/$module/_jsii/.*\.jsii\.tgz$" "$PY_OUT/sdist.files" || die "$sdist lacks the embedded jsii package"
  rm -f "$PY_OUT/sdist.files"
  log "sdist $(basename "$sdist") ($dist_name, $(du -h "$sdist" | cut -f1))"
else
  log "setuptools is not installed for $PYTHON: source distribution not built"
fi
log "ok (wheel and import need PyPI: see the header of scripts/python-binding.sh)"
