ALTER TABLE login_codes DROP COLUMN redirect_uri_required;
