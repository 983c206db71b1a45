import { PIXELS } from './digit.js';

/**
 * A digit drawn with block characters for a terminal: 14 lines of 28 characters, each character two
 * pixels stacked (▀ top inked, ▄ bottom inked, █ both), a pixel inked at grey level `threshold` or
 * more (default 100 of 255).
 */
export function drawDigit(pixels: Uint8Array, threshold = 100): string[] {
  if (pixels.length !== PIXELS) throw new RangeError(`a digit has ${PIXELS} pixels, got ${pixels.length}`);
  const lines: string[] = [];
  for (let y = 0; y < 28; y += 2) {
    let line = '';
    for (let x = 0; x < 28; x++) {
      const top = pixels[y * 28 + x]! >= threshold;
      const bottom = pixels[(y + 1) * 28 + x]! >= threshold;
      line += top ? (bottom ? '█' : '▀') : bottom ? '▄' : ' ';
    }
    lines.push(line);
  }
  return lines;
}
