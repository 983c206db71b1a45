/** The example's source table in PostgreSQL. */
export const DIGITS_TABLE_SQL = 'CREATE TABLE digits (id int PRIMARY KEY, label int, pixels bytea)';
