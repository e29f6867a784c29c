-- Users without a password get one that no password verifies ('!' is no argon2 hash), so
-- the column can be required again; they can no longer sign in until an admin resets them.
UPDATE users SET password_hash = '!' WHERE password_hash IS NULL;
ALTER TABLE users ALTER COLUMN password_hash SET NOT NULL;
DROP TABLE login_codes;
DROP TABLE user_identities;
