/** The extension points of featureflow: one file per interface an adapter implements. */
export type * from './source';
export type * from './change-log';
export type * from './online-store';
export type * from './scorer';
