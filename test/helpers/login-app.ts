// The login web application the http probe tests run against now lives in the sandbox
// (sandbox/login.ts), so that `vakt demo` and the tests share one implementation. Re-exported
// here for the tests that import it from the helpers.
export { startLoginApp, type LoginApp, type LoginAppOptions, type RecordedRequest } from '../../sandbox/login.js';
