DROP TABLE datasets;
-- CASCADE: the row tables of every dataset go with their schema.
DROP SCHEMA datasets CASCADE;
