// Runs a bytecode compile job inside pyodide (CPython in WebAssembly) for a whole bundle at once.
//
//   node pyc_compile.mjs <pyodide package dir> <bytecode.py> <bundle root>  < job.json  > result.json
//
// The bundle root is mounted at the same path inside pyodide (NODEFS), so the job's paths hold in
// both worlds; bytecode.py's compile_job does the work, as it does under a native interpreter.
// Everything loads from the npm package: no network.
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [pyodideDir, workerPath, bundleRoot] = process.argv.slice(2);
const indexURL = path.resolve(pyodideDir) + path.sep;
const { loadPyodide } = await import(pathToFileURL(path.join(indexURL, "pyodide.mjs")).href);
// Python's own prints go to stderr: stdout carries only the JSON result.
const toStderr = (line) => process.stderr.write(`${line}\n`);
const pyodide = await loadPyodide({ indexURL, stdout: toStderr, stderr: toStderr });

pyodide.FS.mkdirTree(bundleRoot);
pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: bundleRoot }, bundleRoot);

// Imported as a module (not run in a bare namespace): dataclasses look their module up in sys.modules.
pyodide.FS.mkdirTree("/pyc_worker");
pyodide.FS.writeFile("/pyc_worker/pyc_worker.py", readFileSync(workerPath));
pyodide.runPython("import sys; sys.path.insert(0, '/pyc_worker')");
const compileJob = pyodide.pyimport("pyc_worker").compile_job;
// Read stdin as a stream: readFileSync(0) fails with EAGAIN when the pipe is non-blocking.
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
process.stdout.write(compileJob(Buffer.concat(chunks).toString("utf8")));
