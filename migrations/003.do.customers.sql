CREATE TABLE customers (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL,
  email       text NOT NULL,
  tier        text NOT NULL DEFAULT 'free'
              CONSTRAINT customers_tier_check CHECK (tier IN ('free', 'pro', 'enterprise')),
  is_active   boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Emails are unique regardless of case; the application also stores them lower-cased.
CREATE UNIQUE INDEX customers_email_key ON customers (lower(email));
CREATE INDEX customers_name_idx ON customers (name, id);
CREATE INDEX customers_created_at_idx ON customers (created_at, id);
CREATE INDEX customers_tier_idx ON customers (tier);
CREATE INDEX customers_name_trgm_idx ON customers USING gin (name gin_trgm_ops);
CREATE INDEX customers_email_trgm_idx ON customers USING gin (email gin_trgm_ops);
