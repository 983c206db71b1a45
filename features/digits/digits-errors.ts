/** The digits example's coded errors: its data files and its training script. */
import { defineErrors } from '../../framework/errors.js';

export const DIGITS_ERRORS = defineErrors({
  FF_DIGITS_IDX: {
    retriable: false,
    summary: 'an MNIST IDX file is missing, is not the IDX file it should be, or is truncated',
  },
  FF_DIGITS_DATA: {
    retriable: false,
    summary: 'the digits to load or to train on are not there, or not as expected',
  },
});
