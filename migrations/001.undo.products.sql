DROP TABLE products;
-- pg_trgm stays: other schemas in the same database may use it.
