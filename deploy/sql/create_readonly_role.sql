-- The read-only role the API queries with (DB_READONLY_USER / DB_READONLY_PASSWORD).
--
-- Idempotent: safe to run again, e.g. to rotate the password. Run it as a superuser (or a role with
-- CREATEROLE that owns the database), connected to the application database:
--
--   psql -v ON_ERROR_STOP=1 -d observatory \
--        -v readonly_password="$DB_READONLY_PASSWORD" \
--        [-v readonly_user=observatory_readonly] [-v owner_role=observatory] \
--        -f deploy/sql/create_readonly_role.sql
--
-- owner_role is the role that runs the migrations and so creates the tables; it defaults to the owner
-- of the current database. Tables it creates later are readable through ALTER DEFAULT PRIVILEGES.
-- TimescaleDB copies a hypertable's privileges to its chunks, so hypertables need nothing more.

\set ON_ERROR_STOP on

\if :{?readonly_password}
\else
  \warn 'create_readonly_role.sql: pass the password with -v readonly_password=...'
  DO $$ BEGIN RAISE EXCEPTION 'psql variable readonly_password is required'; END $$;
\endif

\if :{?readonly_user}
\else
  \set readonly_user observatory_readonly
\endif

\if :{?owner_role}
\else
  SELECT pg_catalog.pg_get_userbyid(datdba) AS owner_role
    FROM pg_catalog.pg_database
   WHERE datname = pg_catalog.current_database() \gset
\endif

SELECT pg_catalog.current_database() AS db_name \gset

-- The role: created once, then its attributes and password are (re)set on every run.
SELECT format('CREATE ROLE %I', :'readonly_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'readonly_user') \gexec

SELECT format(
         'ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L',
         :'readonly_user', :'readonly_password') \gexec

-- A safety net on top of the grants: every transaction of this role starts read-only.
ALTER ROLE :"readonly_user" SET default_transaction_read_only = on;

-- No one but the owner creates objects in public (already the default on PostgreSQL 15+).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

GRANT CONNECT ON DATABASE :"db_name" TO :"readonly_user";
GRANT USAGE ON SCHEMA public TO :"readonly_user";

-- Tables (and views) that exist now ...
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"readonly_user";

-- ... and those the owner creates later (the migrations run as the owner).
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
  GRANT SELECT ON TABLES TO :"readonly_user";

-- The one exception: logout and refresh-token rotation write the revocation tables (migration
-- 0006), and the API's DATABASE_URL may be this role (compose.yml). The migration grants the same
-- when `database.readonly_user` names this role; this covers a role created after it ran.
-- `default_transaction_read_only` stays on: the API opens its revocation connections read-write.
SELECT format('GRANT SELECT, INSERT, DELETE ON %I TO %I', table_name, :'readonly_user')
  FROM information_schema.tables
 WHERE table_schema = 'public' AND table_name IN ('revoked_token_families', 'refresh_token_uses') \gexec

\echo 'read-only role' :"readonly_user" 'ready in database' :"db_name" '- default privileges cover tables created by' :"owner_role"
