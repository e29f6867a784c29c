-- Trigram indexes make the `q` search (ILIKE '%term%') index-backed instead of a full scan.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE products (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  sku         text NOT NULL CONSTRAINT products_sku_key UNIQUE,
  name        text NOT NULL,
  description text,
  price       numeric(12, 2) NOT NULL CONSTRAINT products_price_positive CHECK (price > 0),
  stock       integer NOT NULL DEFAULT 0 CONSTRAINT products_stock_non_negative CHECK (stock >= 0),
  is_active   boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX products_price_idx ON products (price, id);
CREATE INDEX products_created_at_idx ON products (created_at, id);
CREATE INDEX products_name_idx ON products (name, id);
CREATE INDEX products_is_active_idx ON products (is_active);
CREATE INDEX products_name_trgm_idx ON products USING gin (name gin_trgm_ops);
CREATE INDEX products_sku_trgm_idx ON products USING gin (sku gin_trgm_ops);
