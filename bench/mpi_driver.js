// Runs the npm package `mixpanel-import` (installed by bench/comparison_tools.py under bench/.tools) on an
// NDJSON file of Mixpanel events, against a local /import emulator instead of api.mixpanel.com.
//
//   node bench/mpi_driver.js <emulator-url> <events.ndjson> [workers]
//
// mixpanel-import has no base-URL option: its endpoints are a hard-coded table in
// components/job.js (`https://api.mixpanel.com/import` for region US), and its default undici
// transport sends through a Pool created at load time for the origin `https://api.mixpanel.com`
// (components/importers.js). So, without editing the package, this driver
//   1. replaces undici's exported Pool class before mixpanel-import loads, so the pool it builds
//      for api.mixpanel.com connects to the emulator instead (path and query are unchanged), and
//   2. overrides Job's `url` getter, so the `got` transport (and any URL-derived path) also
//      points at the emulator.
// Everything else (batching, gzip, workers, strict, retries) is the package's own code.
'use strict';

const path = require('path');
const { createRequire } = require('module');

const [emulator, file, workersArg] = process.argv.slice(2);
const tools = path.join(__dirname, '.tools', 'package.json');
const requireTool = createRequire(tools);

const undici = requireTool('undici');
const OriginalPool = undici.Pool;
undici.Pool = class EmulatorPool extends OriginalPool {
	constructor(origin, options) {
		super(emulator, options);
	}
};
const Job = requireTool('mixpanel-import/components/job.js');
Object.defineProperty(Job.prototype, 'url', {
	get() {
		return `${emulator}/import`;
	},
});
const mpImport = requireTool('mixpanel-import');

async function main() {
	const started = process.hrtime.bigint();
	const options = {
		recordType: 'event',
		streamFormat: 'jsonl',
		compress: true, // its default: gzip level 6
		strict: true,
		fastMode: true, // "skip all transformations for pre-processed data"
		abridged: true, // do not keep every response in memory
		verbose: false,
		showProgress: false,
		logs: false,
	};
	if (workersArg) options.workers = Number(workersArg);
	const creds = { acct: 'sa-user.mp-service-account', pass: 'sa-secret', project: '12345' };
	const result = await mpImport(creds, file, options);
	const seconds = Number(process.hrtime.bigint() - started) / 1e9;
	const summary = {
		success: result.success,
		failed: result.failed,
		total: result.total,
		requests: result.requests,
		retries: result.retries,
		workers: result.workers,
		seconds,
	};
	process.stdout.write(JSON.stringify(summary) + '\n');
	process.exit(0); // the shared undici pools would otherwise keep the event loop alive
}

main().catch((error) => {
	console.error(error);
	process.exit(1);
});
