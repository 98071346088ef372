// firetower.mjs: firetower.js as an ES module.
//
//   import { FireTower, firetower } from '/static/firetower.mjs'
//
// The implementation lives in firetower.js, which is valid both as a classic
// script and as a module; importing it defines the globals firetower,
// FireTower and FireTowerError, which are re-exported here.
import './firetower.js';

const { firetower, FireTower, FireTowerError } = globalThis;

export { firetower, FireTower, FireTowerError };
export default FireTower;
