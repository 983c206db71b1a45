import {
  bool,
  entity,
  featureView,
  float64,
  text,
  timestamp,
  type FeatureDefinitions,
} from '../../framework/features/index.js';

/** The simple example's source table in PostgreSQL. */
export const CUSTOMERS_TABLE_SQL =
  'CREATE TABLE customers (id int PRIMARY KEY, name text, balance numeric(12,2), active boolean, signed_up timestamptz)';

export const customer = entity({ name: 'customer', keys: ['id'] });

/** Columns taken as they are (no transform): each feature is the column of the same name. */
export const customerProfile = featureView({
  name: 'customer_profile',
  version: 1,
  entity: customer,
  source: 'customers',
  features: { balance: float64, active: bool, signed_up: timestamp },
  ttl: '30d',
});

/** A transform and a filter: only active customers, with a derived feature. */
export const activeCustomer = featureView({
  name: 'active_customer',
  version: 1,
  entity: customer,
  source: 'customers',
  features: { name_length: float64, in_credit: bool, name: text },
  filter: (row) => row.active === true,
  transform: (row) => ({
    name_length: typeof row.name === 'string' ? row.name.length : null,
    in_credit: row.balance === null ? null : Number(row.balance) > 0,
    name: row.name as string | null,
  }),
});

export const customerFeatures: FeatureDefinitions = { views: [customerProfile, activeCustomer] };
