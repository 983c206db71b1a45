import { FeatureflowError } from '../../framework/errors.js';

/** Options of the in-process online store. */
export interface MemoryConfig {
  /**
   * Entities each view version has room for before its storage grows (it doubles when full, so a
   * load of N entities copies about N more). Default 1 024; set it near the entity count to load
   * without growing.
   */
  initialCapacity?: number;
}

/** The configuration with its defaults filled in; frozen. */
export type ResolvedMemoryConfig = Readonly<Required<MemoryConfig>>;

/** Validates the options, fills defaults and freezes the result. */
export function resolveMemoryConfig(config: MemoryConfig = {}): ResolvedMemoryConfig {
  const initialCapacity = config.initialCapacity ?? 1024;
  if (!(Number.isInteger(initialCapacity) && initialCapacity >= 1 && initialCapacity <= 2 ** 30)) {
    throw new FeatureflowError(
      'FF_CONFIG_INVALID',
      `invalid memory online store configuration: initialCapacity must be a whole number from 1 to 2^30, got ${String(initialCapacity)}`,
    );
  }
  return Object.freeze({ initialCapacity });
}
