import { formatPosition, parsePosition, type Position } from '../../framework/types.js';

/**
 * A PostgreSQL log sequence number: this source's position. Its text form `16/B374D848` is the
 * framework's position text; compare LSNs as bigints (the text does not sort as a string).
 */
export type Lsn = Position;
export const parseLsn = parsePosition;
export const formatLsn = formatPosition;
