import { entity } from '../../framework/features/index.js';

/** A handwritten-digit image, keyed by the id of its row in `digits`. */
export const image = entity({
  name: 'image',
  keys: ['id'],
  description: 'a 28×28 grey-scale image of a handwritten digit',
});
