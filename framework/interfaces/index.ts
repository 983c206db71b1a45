/** The extension points of featureflow: one file per interface an adapter implements. */
export type * from './source.js';
export type * from './change-log.js';
export type * from './online-store.js';
export type * from './scorer.js';
export type * from './offline-store.js';
export type * from './change-bus.js';
export type * from './prediction-sink.js';
export type * from './change-publisher.js';
