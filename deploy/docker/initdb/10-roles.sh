#!/usr/bin/env bash
# Runs once, on an empty data directory, from /docker-entrypoint-initdb.d of the compose `timescaledb`
# service (after the image's own 000_/001_ scripts, which create the timescaledb extension in template1).
#
# Creates:
#   - the owner role (OBSERVATORY_OWNER_USER, default observatory) that runs the migrations,
#   - the application database (OBSERVATORY_DB, default observatory) owned by it; it is cloned from
#     template1, so it has the timescaledb extension when the server has it,
#   - the read-only role the API uses (DB_READONLY_USER, default observatory_readonly), by running
#     deploy/sql/create_readonly_role.sql (mounted at $OBSERVATORY_SQL_DIR).
#
# The entrypoint sources this file when it is not executable: so no `exit` and no `set -u` here.
set -Eeo pipefail

observatory_owner_user="${OBSERVATORY_OWNER_USER:-observatory}"
observatory_db="${OBSERVATORY_DB:-observatory}"
observatory_readonly_user="${DB_READONLY_USER:-observatory_readonly}"
observatory_sql_dir="${OBSERVATORY_SQL_DIR:-/opt/observatory/sql}"
: "${OBSERVATORY_OWNER_PASSWORD:?OBSERVATORY_OWNER_PASSWORD must be set for the owner role}"
: "${DB_READONLY_PASSWORD:?DB_READONLY_PASSWORD must be set for the read-only role}"

observatory_psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}")

echo "10-roles.sh: owner role '${observatory_owner_user}', database '${observatory_db}'"
# Quoted heredoc: bash expands nothing inside; psql fills in the -v variables and quotes them.
"${observatory_psql[@]}" --dbname postgres \
    -v owner_user="${observatory_owner_user}" \
    -v owner_password="${OBSERVATORY_OWNER_PASSWORD}" \
    -v db_name="${observatory_db}" <<'SQL'
SELECT format('CREATE ROLE %I', :'owner_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'owner_user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L',
              :'owner_user', :'owner_password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db_name', :'owner_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = :'db_name') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db_name', :'owner_user') \gexec
SQL

# Normally inherited from template1; created here when the server preloads timescaledb but template1
# lacks it. Without the extension the migration keeps spans/logs as plain tables.
"${observatory_psql[@]}" --dbname "${observatory_db}" <<'SQL'
SELECT 'CREATE EXTENSION IF NOT EXISTS timescaledb'
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'timescaledb')
   AND pg_catalog.current_setting('shared_preload_libraries') LIKE '%timescaledb%' \gexec
SQL

"${observatory_psql[@]}" --dbname "${observatory_db}" \
    -v readonly_user="${observatory_readonly_user}" \
    -v readonly_password="${DB_READONLY_PASSWORD}" \
    -v owner_role="${observatory_owner_user}" \
    -f "${observatory_sql_dir}/create_readonly_role.sql"
