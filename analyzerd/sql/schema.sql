-- The results database. Each "-- migration N --" block moves the schema from version
-- N-1 to N (PRAGMA user_version). Blocks are append-only: never edit a released one.

-- migration 1 --
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    reference    TEXT    NOT NULL,            -- as submitted
    platform     TEXT,                        -- os/arch[/variant], NULL: the configured default
    force        INTEGER NOT NULL DEFAULT 0,  -- 1: analyze even if the manifest was analyzed
    status       TEXT    NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    created_at   REAL    NOT NULL,            -- Unix time
    started_at   REAL,
    finished_at  REAL,
    image_digest TEXT,                        -- manifest digest of the result
    worker       TEXT,                        -- host:pid of the daemon holding the lease
    lease_until  REAL                         -- a running job whose lease passed is retaken
);
CREATE INDEX jobs_by_status ON jobs (status, id);

CREATE TABLE images (
    id                  INTEGER PRIMARY KEY,
    manifest_digest     TEXT    NOT NULL UNIQUE,
    manifest_media_type TEXT,
    index_digest        TEXT,                 -- the index it was chosen from, if any
    config_digest       TEXT,
    os                  TEXT,
    architecture        TEXT,
    variant             TEXT,
    created             TEXT,                 -- the config's creation time (RFC 3339)
    layer_count         INTEGER,
    compressed_size     INTEGER,              -- sum of layer blob sizes
    uncompressed_size   INTEGER,              -- sum of layer tar sizes
    file_count          INTEGER,              -- entries in the merged filesystem
    distro_id           TEXT,                 -- os-release ID (debian, alpine, rhel, ...)
    distro_version_id   TEXT,
    distro_codename     TEXT,
    distro_id_like      TEXT,                 -- space-separated, as in os-release
    distro_name         TEXT,                 -- PRETTY_NAME
    analysis_status     TEXT    NOT NULL DEFAULT 'not_analyzed'
                        CHECK (analysis_status IN ('not_analyzed', 'analyzing', 'analyzed', 'analysis_failed')),
    analysis_error      TEXT,
    warnings            TEXT,                 -- JSON list: what was skipped or could not be read
    analyzer_version    TEXT,
    analyzed_at         REAL,
    config_json         TEXT                  -- the image config as served
);

CREATE TABLE image_references (
    reference TEXT    NOT NULL,
    image_id  INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    last_seen REAL    NOT NULL,
    PRIMARY KEY (reference, image_id)
);
CREATE INDEX image_references_by_image ON image_references (image_id);

CREATE TABLE layers (
    id                INTEGER PRIMARY KEY,
    digest            TEXT    NOT NULL UNIQUE,   -- the blob digest
    media_type        TEXT,
    compressed_size   INTEGER,
    uncompressed_size INTEGER,
    diff_id           TEXT,                      -- sha256 of the uncompressed tar
    entry_count       INTEGER,
    analyzer_version  TEXT,                      -- layer_files etc. hold this version's result
    analyzed_at       REAL,
    warnings          TEXT                       -- JSON list
);

-- What each layer contains, independent of any image: reused by every image that shares
-- the layer. Hardlinks to files of lower layers have NULL digests here (the image's view
-- in `files` resolves them).
CREATE TABLE layer_files (
    layer_id INTEGER NOT NULL REFERENCES layers (id) ON DELETE CASCADE,
    path     TEXT    NOT NULL,
    type     TEXT    NOT NULL,
    mode     INTEGER NOT NULL,
    uid      INTEGER NOT NULL,
    gid      INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    mtime    INTEGER NOT NULL,
    link     TEXT,
    md5      TEXT,
    sha1     TEXT,
    sha256   TEXT,
    PRIMARY KEY (layer_id, path)
) WITHOUT ROWID;

-- What the catalogers found in each file of a layer (JSON), reused like layer_files.
CREATE TABLE layer_catalog (
    layer_id  INTEGER NOT NULL REFERENCES layers (id) ON DELETE CASCADE,
    path      TEXT    NOT NULL,
    cataloger TEXT    NOT NULL,
    result    TEXT    NOT NULL,
    PRIMARY KEY (layer_id, path)
) WITHOUT ROWID;

-- A layer's whiteouts: 'delete' removes path (and below) from lower layers, 'opaque' hides
-- what lower layers had under the directory path.
CREATE TABLE layer_whiteouts (
    layer_id INTEGER NOT NULL REFERENCES layers (id) ON DELETE CASCADE,
    path     TEXT    NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('delete', 'opaque')),
    PRIMARY KEY (layer_id, path, kind)
) WITHOUT ROWID;

CREATE TABLE image_layers (
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,                   -- 0 is the base layer
    layer_id INTEGER NOT NULL REFERENCES layers (id),
    PRIMARY KEY (image_id, position)
);

-- An image's merged filesystem: for each visible path, the layer that last wrote it. The
-- attributes are that layer's (layer_files); the columns here are set only where the image
-- sees something no layer lists as such: a parent directory no layer has an entry for, or
-- a hardlink whose target is in a lower layer (its content). Query the image_files view.
CREATE TABLE files (
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    path     TEXT    NOT NULL,
    layer_id INTEGER NOT NULL REFERENCES layers (id),
    type     TEXT,
    mode     INTEGER,
    uid      INTEGER,
    gid      INTEGER,
    size     INTEGER,
    mtime    INTEGER,
    link     TEXT,
    md5      TEXT,
    sha1     TEXT,
    sha256   TEXT,
    PRIMARY KEY (image_id, path)
) WITHOUT ROWID;
-- No index on sha256: it would double the cost of storing files (random inserts of
-- 64-character keys). Add one if you look images up by file content:
--   CREATE INDEX layer_files_by_sha256 ON layer_files (sha256);

-- Every file of every image with its attributes, as `analyzerd show --files` prints them.
CREATE VIEW image_files AS
SELECT f.image_id, i.manifest_digest, f.path,
       coalesce(f.type, lf.type) AS type,
       printf('%04o', coalesce(f.mode, lf.mode)) AS mode,
       coalesce(f.uid, lf.uid) AS uid, coalesce(f.gid, lf.gid) AS gid,
       coalesce(f.size, lf.size) AS size, coalesce(f.mtime, lf.mtime) AS mtime,
       coalesce(f.link, lf.link) AS link, coalesce(f.md5, lf.md5) AS md5,
       coalesce(f.sha1, lf.sha1) AS sha1, coalesce(f.sha256, lf.sha256) AS sha256,
       l.digest AS layer_digest
FROM files f
JOIN images i ON i.id = f.image_id
JOIN layers l ON l.id = f.layer_id
LEFT JOIN layer_files lf ON lf.layer_id = f.layer_id AND lf.path = f.path;

-- An image's packages (every ecosystem), found in the database files it shows.
CREATE TABLE packages (
    id               INTEGER PRIMARY KEY,
    image_id         INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    type             TEXT    NOT NULL,           -- purl type: deb, apk, rpm, pypi, npm, ...
    name             TEXT    NOT NULL,
    version          TEXT    NOT NULL,           -- rpm: [epoch:]version-release
    arch             TEXT,
    epoch            INTEGER,
    source_name      TEXT,
    source_version   TEXT,
    license          TEXT,
    maintainer       TEXT,
    vendor           TEXT,
    installed_size   INTEGER,                    -- bytes
    purl             TEXT    NOT NULL,
    location         TEXT    NOT NULL,           -- the file it was found in
    layer_id         INTEGER NOT NULL REFERENCES layers (id),  -- the layer that wrote that file
    files_total      INTEGER NOT NULL DEFAULT 0, -- files the package database lists
    files_modified   INTEGER NOT NULL DEFAULT 0, -- ... whose content differs from the record
    files_missing    INTEGER NOT NULL DEFAULT 0, -- ... that the image does not have
    files            TEXT,                       -- JSON [[path, digest, algorithm, status], ...]: see package_files
    metadata         TEXT                        -- JSON
);
CREATE INDEX packages_by_image ON packages (image_id);
CREATE INDEX packages_by_name ON packages (name, version);

-- The files each package's database lists, checked against the image's actual files.
-- Kept as one JSON list per package (rows would double the cost of storing an image).
CREATE VIEW package_files AS
SELECT p.id AS package_id, p.image_id, p.type, p.name AS package,
       json_extract(f.value, '$[0]') AS path, json_extract(f.value, '$[1]') AS digest,
       json_extract(f.value, '$[2]') AS algorithm, json_extract(f.value, '$[3]') AS status
FROM packages p, json_each(p.files) f;

-- Packages with the image's digest and the layer digest, one line per package.
CREATE VIEW image_packages AS
SELECT p.image_id, i.manifest_digest, p.type, p.name, p.version, p.arch, p.source_name,
       p.source_version, p.license, p.purl, p.location, l.digest AS layer_digest,
       p.files_total, p.files_modified, p.files_missing
FROM packages p JOIN images i ON i.id = p.image_id JOIN layers l ON l.id = p.layer_id;

-- migration 2 --
-- Language packages: maven's groupId (and other purl namespaces), and whether a package is
-- installed or only declared by a lock/manifest file (requirements.txt, package-lock.json, ...).
ALTER TABLE packages ADD COLUMN namespace TEXT;
ALTER TABLE packages ADD COLUMN declared INTEGER NOT NULL DEFAULT 0;  -- 1: from a lock/manifest file
DROP VIEW image_packages;
CREATE VIEW image_packages AS
SELECT p.image_id, i.manifest_digest, p.type, p.namespace, p.name, p.version, p.arch, p.source_name,
       p.source_version, p.license, p.purl, p.declared, p.location, l.digest AS layer_digest,
       p.files_total, p.files_modified, p.files_missing
FROM packages p JOIN images i ON i.id = p.image_id JOIN layers l ON l.id = p.layer_id;

-- migration 3 --
-- Secrets: what each layer's files hold (reused with the layer while the rule set is the
-- same), and each image's findings, including those in files an upper layer deleted.
-- The secret itself is never stored: a redacted prefix and a keyed fingerprint.
ALTER TABLE layers ADD COLUMN secret_rules TEXT;  -- the rule set layer_secrets were found with
CREATE TABLE layer_secrets (
    layer_id     INTEGER NOT NULL REFERENCES layers (id) ON DELETE CASCADE,
    path         TEXT    NOT NULL,
    rule         TEXT    NOT NULL,
    category     TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    line         INTEGER NOT NULL,
    offset       INTEGER NOT NULL,            -- byte offset of the match in the file
    redacted     TEXT    NOT NULL,            -- the first 4 characters, then *****
    fingerprint  TEXT    NOT NULL             -- HMAC-SHA256 under the installation's key
);
CREATE INDEX layer_secrets_by_layer ON layer_secrets (layer_id);
CREATE TABLE secrets (
    id                INTEGER PRIMARY KEY,
    image_id          INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    layer_id          INTEGER NOT NULL REFERENCES layers (id),  -- the layer whose file holds it
    path              TEXT    NOT NULL,
    rule              TEXT    NOT NULL,
    category          TEXT    NOT NULL,
    severity          TEXT    NOT NULL,
    line              INTEGER NOT NULL,
    offset            INTEGER NOT NULL,
    redacted          TEXT    NOT NULL,
    fingerprint       TEXT    NOT NULL,
    -- the upper layer that deleted or replaced the file: the secret is still in the
    -- image's blobs for anyone who pulls it; NULL: the file is in the image as shown
    deleted_in_layer  INTEGER REFERENCES layers (id)
);
CREATE INDEX secrets_by_image ON secrets (image_id);
CREATE INDEX secrets_by_fingerprint ON secrets (fingerprint);
CREATE VIEW image_secrets AS
SELECT s.image_id, i.manifest_digest, s.path, s.rule, s.category, s.severity, s.line, s.offset,
       s.redacted, s.fingerprint, l.digest AS layer_digest, d.digest AS deleted_in_layer_digest
FROM secrets s JOIN images i ON i.id = s.image_id JOIN layers l ON l.id = s.layer_id
LEFT JOIN layers d ON d.id = s.deleted_in_layer;

-- migration 4 --
-- A job that failed for a reason that may pass (a registry's 5xx or 429, a network error)
-- is queued again with a backoff: it is not claimed before not_before.
ALTER TABLE jobs ADD COLUMN not_before REAL;

-- migration 5 --
-- How far a running job is (JSON: layers_done, layers_total, bytes, files), written by its
-- daemon every few seconds for `submit --wait` and GET /status.
ALTER TABLE jobs ADD COLUMN progress TEXT;

-- migration 6 --
-- One line per package file whose content differs from what its package database recorded,
-- or that the image does not have: the files to look at first after a compromise.
CREATE VIEW package_file_changes AS
SELECT p.image_id, i.manifest_digest, p.type, p.name AS package, p.version, f.path, f.status,
       f.digest AS recorded_digest, f.algorithm
FROM package_files f JOIN packages p ON p.id = f.package_id JOIN images i ON i.id = p.image_id
WHERE f.status IN ('modified', 'missing');

-- migration 7 --
-- What every process using the database must agree on. fingerprint_key_id names the
-- secret-fingerprint key (an HMAC of a fixed text under it, not the key): a daemon whose key
-- differs refuses to start, rather than find other hosts' layer results stale and analyze
-- them again, and again.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- migration 8 --
-- Tries of a job that ended with its daemon dead: its lease expired (OOM kill, crash, kill -9,
-- power loss). They count toward max_attempts like any other try, so an image that kills
-- every daemon that analyzes it is failed, not handed from host to host for ever.
ALTER TABLE jobs ADD COLUMN lease_expiries INTEGER NOT NULL DEFAULT 0;

-- migration 9 --
-- 'parent': a path whose parent directories a layer makes without listing them (the runtime
-- creates the parents of every name it meets, a skipped global PAX header's name too).
CREATE TABLE layer_whiteouts_9 (
    layer_id INTEGER NOT NULL REFERENCES layers (id) ON DELETE CASCADE,
    path     TEXT    NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('delete', 'opaque', 'parent')),
    PRIMARY KEY (layer_id, path, kind)
) WITHOUT ROWID;
INSERT INTO layer_whiteouts_9 (layer_id, path, kind) SELECT layer_id, path, kind FROM layer_whiteouts;
DROP TABLE layer_whiteouts;
ALTER TABLE layer_whiteouts_9 RENAME TO layer_whiteouts;

-- migration 10 --
-- 'made': a directory the runtime makes for a child the layer lists before (or without) it;
-- containerd looks each one up in the lower layers (see archive/whiteout.py).
CREATE TABLE layer_whiteouts_10 (
    layer_id INTEGER NOT NULL REFERENCES layers (id) ON DELETE CASCADE,
    path     TEXT    NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('delete', 'opaque', 'parent', 'made')),
    PRIMARY KEY (layer_id, path, kind)
) WITHOUT ROWID;
INSERT INTO layer_whiteouts_10 (layer_id, path, kind) SELECT layer_id, path, kind FROM layer_whiteouts;
DROP TABLE layer_whiteouts;
ALTER TABLE layer_whiteouts_10 RENAME TO layer_whiteouts;

-- migration 11 --
-- Secrets found in the image config (path 'config:Env[2]', 'config:history[3].created_by', ...):
-- one in Env, Labels, Entrypoint or Cmd is in no layer, so secrets.layer_id may be NULL.
-- Hints made before showed a secret's first 4 characters, whatever its rule: they are replaced
-- by what shows nothing of it (the length is not known any more), and every layer's secrets
-- are looked for again when an image needs the layer (the rule set's digest changed).
DROP VIEW image_secrets;
CREATE TABLE secrets_11 (
    id                INTEGER PRIMARY KEY,
    image_id          INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    -- the layer whose file holds it, or that the config's history entry made; NULL: the
    -- image config holds it outside any layer
    layer_id          INTEGER REFERENCES layers (id),
    path              TEXT    NOT NULL,
    rule              TEXT    NOT NULL,
    category          TEXT    NOT NULL,
    severity          TEXT    NOT NULL,
    line              INTEGER NOT NULL,
    offset            INTEGER NOT NULL,
    redacted          TEXT    NOT NULL,  -- the rule's public literals only (secrets/redaction.py)
    fingerprint       TEXT    NOT NULL,
    deleted_in_layer  INTEGER REFERENCES layers (id)
);
INSERT INTO secrets_11 (image_id, layer_id, path, rule, category, severity, line, offset, redacted, fingerprint,
                        deleted_in_layer)
SELECT image_id, layer_id, path, rule, category, severity, line, offset,
       '<redacted: fp ' || substr(fingerprint, 1, 8) || '>', fingerprint, deleted_in_layer
FROM secrets ORDER BY id;
DROP TABLE secrets;
ALTER TABLE secrets_11 RENAME TO secrets;
CREATE INDEX secrets_by_image ON secrets (image_id);
CREATE INDEX secrets_by_fingerprint ON secrets (fingerprint);
CREATE VIEW image_secrets AS
SELECT s.image_id, i.manifest_digest, s.path, s.rule, s.category, s.severity, s.line, s.offset,
       s.redacted, s.fingerprint, l.digest AS layer_digest, d.digest AS deleted_in_layer_digest
FROM secrets s JOIN images i ON i.id = s.image_id LEFT JOIN layers l ON l.id = s.layer_id
LEFT JOIN layers d ON d.id = s.deleted_in_layer;
UPDATE layer_secrets SET redacted = '<redacted: fp ' || substr(fingerprint, 1, 8) || '>';

-- migration 12 --
-- Images analyzed before version 5 hold their config as served, secrets and all: marked, so
-- that the first process that opens the database with the secret rules redacts it and
-- records what it found (Store.redact_older_configs). An analysis clears the mark.
ALTER TABLE images ADD COLUMN config_unscanned INTEGER NOT NULL DEFAULT 0;
UPDATE images SET config_unscanned = 1
WHERE config_json IS NOT NULL AND analyzer_version IS NOT NULL AND CAST(analyzer_version AS INTEGER) < 5;
