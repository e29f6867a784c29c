CREATE TABLE orders (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- RESTRICT: a customer or user with orders is deactivated, never deleted (409 in the API).
  customer_id  uuid NOT NULL REFERENCES customers (id) ON DELETE RESTRICT,
  created_by   uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  status       text NOT NULL DEFAULT 'pending'
               CONSTRAINT orders_status_check
               CHECK (status IN ('pending', 'processing', 'shipped', 'delivered', 'cancelled')),
  total        numeric(14, 2) NOT NULL CONSTRAINT orders_total_non_negative CHECK (total >= 0),
  notes        text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE INDEX orders_created_by_idx ON orders (created_by, created_at, id);
CREATE INDEX orders_created_at_idx ON orders (created_at, id);
CREATE INDEX orders_total_idx ON orders (total, id);
CREATE INDEX orders_status_idx ON orders (status, id);
CREATE INDEX orders_notes_trgm_idx ON orders USING gin (notes gin_trgm_ops);

CREATE TABLE order_items (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  order_id    uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  -- RESTRICT: an ordered product is deactivated, never deleted, so history stays readable.
  product_id  uuid NOT NULL REFERENCES products (id) ON DELETE RESTRICT,
  -- Copied at order time: later catalogue edits never rewrite past orders.
  product_name text NOT NULL,
  sku         text NOT NULL,
  quantity    integer NOT NULL CONSTRAINT order_items_quantity_positive CHECK (quantity >= 1),
  unit_price  numeric(12, 2) NOT NULL,
  line_total  numeric(14, 2) NOT NULL,
  position    integer NOT NULL,
  CONSTRAINT order_items_order_product_key UNIQUE (order_id, product_id)
);

CREATE INDEX order_items_order_id_idx ON order_items (order_id, position);
CREATE INDEX order_items_product_id_idx ON order_items (product_id);
