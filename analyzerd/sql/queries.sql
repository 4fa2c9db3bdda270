-- Every statement analyzerd runs, by name ("-- name --"), in the SQL that SQLite and PostgreSQL
-- share; sql/postgresql.sql has PostgreSQL's own text for the few that differ.

-- enqueue_job --
INSERT INTO jobs (reference, platform, force, created_at) VALUES (:reference, :platform, :force, :now)
RETURNING id;

-- fail_exhausted_jobs --
-- A running job whose lease expired on its last allowed try: the daemons analyzing it died
-- (the image may be what kills them) and it ends failed instead of being handed out again.
-- Run in the claim's transaction, before claim_job; the WHERE is on the row itself, so of two
-- daemons racing here (PostgreSQL) the second re-reads the row, finds it failed and skips it.
UPDATE jobs
SET status = 'failed', finished_at = :now, lease_until = NULL, lease_expiries = lease_expiries + 1,
    error = CASE
        WHEN lease_expiries + 1 >= attempts THEN
            'the daemons analyzing this image died ' || CAST(attempts AS TEXT) ||
            ' times (lease expired each time); last worker ' || coalesce(worker, 'unknown')
        ELSE
            'the daemons analyzing this image died on ' || CAST(lease_expiries + 1 AS TEXT) || ' of its ' ||
            CAST(attempts AS TEXT) || ' tries (lease expired); last worker ' || coalesce(worker, 'unknown') ||
            coalesce('; an earlier try failed with: ' || error, '')
    END
WHERE status = 'running' AND lease_until < :now AND attempts >= :max_attempts
RETURNING id, reference, attempts, worker, error;

-- claim_job --
-- The oldest queued job, or a running one whose daemon stopped renewing its lease and that
-- has tries left (a retaken job's lease expiry is counted; the dead daemon's progress is
-- cleared).
UPDATE jobs
SET status = 'running', attempts = attempts + 1, started_at = :now, finished_at = NULL,
    worker = :worker, lease_until = :lease_until, progress = NULL,
    lease_expiries = lease_expiries + CASE WHEN status = 'running' THEN 1 ELSE 0 END
WHERE id = (SELECT id FROM jobs
            WHERE (status = 'queued' AND (not_before IS NULL OR not_before <= :now))
               OR (status = 'running' AND lease_until < :now AND attempts < :max_attempts)
            ORDER BY id LIMIT 1)
RETURNING *;

-- renew_lease --
UPDATE jobs SET lease_until = :lease_until WHERE id = :id AND worker = :worker AND status = 'running';

-- finish_job --
UPDATE jobs SET status = :status, finished_at = :now, error = :error, image_digest = :image_digest,
                lease_until = NULL
WHERE id = :id AND worker = :worker AND status = 'running';

-- retry_job --
-- A transient failure: queued again, not to be claimed before :not_before.
UPDATE jobs SET status = 'queued', worker = NULL, lease_until = NULL, error = :error, not_before = :not_before
WHERE id = :id AND worker = :worker AND status = 'running';

-- set_progress --
UPDATE jobs SET progress = :progress WHERE id = :id AND worker = :worker AND status = 'running';

-- release_job --
-- A stopping daemon gives a running job back: queued again, for any daemon to take now.
UPDATE jobs SET status = 'queued', worker = NULL, lease_until = NULL, started_at = NULL
WHERE id = :id AND worker = :worker AND status = 'running';

-- get_job --
SELECT * FROM jobs WHERE id = :id;

-- list_jobs --
SELECT * FROM jobs ORDER BY id;

-- start_image --
INSERT INTO images (manifest_digest, manifest_media_type, index_digest, config_digest, os,
                    architecture, variant, created, layer_count, compressed_size, config_json,
                    analysis_status)
VALUES (:manifest_digest, :manifest_media_type, :index_digest, :config_digest, :os,
        :architecture, :variant, :created, :layer_count, :compressed_size, :config_json, 'analyzing')
ON CONFLICT (manifest_digest) DO UPDATE SET
    analysis_status = CASE WHEN images.analysis_status = 'analyzed' THEN 'analyzed' ELSE 'analyzing' END;

-- fail_image --
-- A failed re-analysis leaves an earlier good result in place.
UPDATE images SET analysis_status = 'analysis_failed', analysis_error = :error
WHERE manifest_digest = :manifest_digest AND analysis_status != 'analyzed';

-- upsert_image --
INSERT INTO images (manifest_digest, manifest_media_type, index_digest, config_digest, os,
                    architecture, variant, created, layer_count, compressed_size,
                    uncompressed_size, file_count, analysis_status, analysis_error, warnings,
                    analyzer_version, analyzed_at, config_json, distro_id, distro_version_id,
                    distro_codename, distro_id_like, distro_name)
VALUES (:manifest_digest, :manifest_media_type, :index_digest, :config_digest, :os,
        :architecture, :variant, :created, :layer_count, :compressed_size, :uncompressed_size,
        :file_count, 'analyzed', NULL, :warnings, :analyzer_version, :now, :config_json, :distro_id,
        :distro_version_id, :distro_codename, :distro_id_like, :distro_name)
ON CONFLICT (manifest_digest) DO UPDATE SET
    manifest_media_type = excluded.manifest_media_type, index_digest = excluded.index_digest,
    config_digest = excluded.config_digest, os = excluded.os, architecture = excluded.architecture,
    variant = excluded.variant, created = excluded.created, layer_count = excluded.layer_count,
    compressed_size = excluded.compressed_size, uncompressed_size = excluded.uncompressed_size,
    file_count = excluded.file_count, analysis_status = 'analyzed', analysis_error = NULL,
    warnings = excluded.warnings, distro_id = excluded.distro_id,
    distro_version_id = excluded.distro_version_id, distro_codename = excluded.distro_codename,
    distro_id_like = excluded.distro_id_like, distro_name = excluded.distro_name,
    analyzer_version = excluded.analyzer_version, analyzed_at = excluded.analyzed_at,
    config_json = excluded.config_json, config_unscanned = 0
RETURNING id;

-- upsert_reference --
INSERT INTO image_references (reference, image_id, last_seen) VALUES (:reference, :image_id, :now)
ON CONFLICT (reference, image_id) DO UPDATE SET last_seen = excluded.last_seen;

-- upsert_layer --
-- Image-level facts about a layer; its analysis (if any) is left as it is.
INSERT INTO layers (digest, media_type, compressed_size, uncompressed_size, diff_id, entry_count)
VALUES (:digest, :media_type, :compressed_size, :uncompressed_size, :diff_id, :entry_count)
ON CONFLICT (digest) DO UPDATE SET
    media_type = excluded.media_type, compressed_size = excluded.compressed_size,
    uncompressed_size = coalesce(excluded.uncompressed_size, layers.uncompressed_size),
    diff_id = coalesce(excluded.diff_id, layers.diff_id),
    entry_count = coalesce(excluded.entry_count, layers.entry_count)
RETURNING id;

-- mark_layer_analyzed --
UPDATE layers SET analyzer_version = :analyzer_version, analyzed_at = :now, warnings = :warnings,
                  secret_rules = :secret_rules
WHERE id = :layer_id;

-- delete_layer_files --
DELETE FROM layer_files WHERE layer_id = :layer_id;

-- delete_layer_whiteouts --
DELETE FROM layer_whiteouts WHERE layer_id = :layer_id;

-- insert_layer_file --
INSERT INTO layer_files (layer_id, path, type, mode, uid, gid, size, mtime, link, md5, sha1, sha256)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- delete_layer_catalog --
DELETE FROM layer_catalog WHERE layer_id = :layer_id;

-- insert_layer_catalog --
INSERT INTO layer_catalog (layer_id, path, cataloger, result) VALUES (?, ?, ?, ?)
ON CONFLICT (layer_id, path) DO UPDATE SET cataloger = excluded.cataloger, result = excluded.result;

-- layer_catalog --
SELECT path, cataloger, result FROM layer_catalog WHERE layer_id = :layer_id ORDER BY path;

-- delete_image_packages --
DELETE FROM packages WHERE image_id = :image_id;

-- insert_package --
INSERT INTO packages (image_id, type, namespace, name, version, arch, epoch, source_name, source_version,
                      license, maintainer, vendor, installed_size, purl, declared, location, layer_id,
                      files_total, files_modified, files_missing, files, metadata)
VALUES (:image_id, :type, :namespace, :name, :version, :arch, :epoch, :source_name, :source_version,
        :license, :maintainer, :vendor, :installed_size, :purl, :declared, :location, :layer_id,
        :files_total, :files_modified, :files_missing, :files, :metadata);

-- image_packages --
SELECT p.*, l.digest AS layer FROM packages p JOIN layers l ON l.id = p.layer_id
WHERE p.image_id = :image_id ORDER BY p.type, p.name, p.version, p.location, p.arch, p.purl, p.id;

-- package_problem_files --
SELECT path, status FROM package_files WHERE package_id = :package_id AND status IN ('modified', 'missing')
ORDER BY path;

-- insert_layer_whiteout --
INSERT INTO layer_whiteouts (layer_id, path, kind) VALUES (?, ?, ?) ON CONFLICT DO NOTHING;

-- find_layer_result --
SELECT * FROM layers WHERE digest = :digest AND analyzer_version = :analyzer_version;

-- layer_files --
SELECT path, type, mode, uid, gid, size, mtime, link, md5, sha1, sha256 FROM layer_files
WHERE layer_id = :layer_id ORDER BY path;

-- layer_whiteouts --
SELECT path, kind FROM layer_whiteouts WHERE layer_id = :layer_id ORDER BY path, kind;

-- delete_image_layers --
DELETE FROM image_layers WHERE image_id = :image_id;

-- insert_image_layer --
INSERT INTO image_layers (image_id, position, layer_id) VALUES (?, ?, ?);

-- delete_image_files --
DELETE FROM files WHERE image_id = :image_id;

-- insert_file --
INSERT INTO files (image_id, path, layer_id) VALUES (?, ?, ?);

-- insert_derived_file --
INSERT INTO files (image_id, path, layer_id, type, mode, uid, gid, size, mtime, link, md5, sha1, sha256)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- current_image --
SELECT id, file_count FROM images
WHERE manifest_digest = :manifest_digest AND analysis_status = 'analyzed' AND analyzer_version = :analyzer_version;

-- config_blob --
SELECT config_json FROM images WHERE config_digest = :config_digest LIMIT 1;

-- find_layer_id --
SELECT id FROM layers WHERE digest = :digest;

-- find_image_id --
SELECT id FROM images WHERE manifest_digest = :manifest_digest;

-- image_references --
SELECT reference FROM image_references WHERE image_id = :image_id ORDER BY last_seen DESC;

-- image_layers --
SELECT l.* FROM image_layers il JOIN layers l ON l.id = il.layer_id
WHERE il.image_id = :image_id ORDER BY il.position;

-- image_files --
SELECT path, type, mode, uid, gid, size, mtime, link, md5, sha1, sha256, layer_digest AS layer
FROM image_files WHERE image_id = :image_id ORDER BY path;

-- delete_layer_secrets --
DELETE FROM layer_secrets WHERE layer_id = :layer_id;

-- insert_layer_secret --
INSERT INTO layer_secrets (layer_id, path, rule, category, severity, line, "offset", redacted, fingerprint)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);

-- layer_secrets --
SELECT path, rule, category, severity, line, "offset", redacted, fingerprint FROM layer_secrets
WHERE layer_id = :layer_id ORDER BY path, line, "offset", rule, fingerprint;

-- delete_image_secrets --
DELETE FROM secrets WHERE image_id = :image_id;

-- insert_secret --
INSERT INTO secrets (image_id, layer_id, path, rule, category, severity, line, "offset", redacted, fingerprint,
                     deleted_in_layer)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- image_secrets --
SELECT s.*, l.digest AS layer, d.digest AS deleted_in_layer_digest
FROM secrets s LEFT JOIN layers l ON l.id = s.layer_id LEFT JOIN layers d ON d.id = s.deleted_in_layer
WHERE s.image_id = :image_id ORDER BY s.path, s.line, s.rule, s."offset", s.id;

-- package_file_paths --
-- Files each package's database lists that the image has (for SPDX CONTAINS relationships).
SELECT p.purl, f.path FROM packages p JOIN package_files f ON f.package_id = p.id
WHERE p.image_id = :image_id AND f.status IN ('ok', 'modified') ORDER BY p.id, f.path;

-- agree_on_setting --
-- The first process to start sets it; later ones read what it set.
INSERT INTO settings (name, value) VALUES (:name, :value) ON CONFLICT (name) DO NOTHING;

-- get_setting --
SELECT value FROM settings WHERE name = :name;

-- unscanned_configs --
SELECT id, config_json FROM images WHERE config_unscanned = 1 AND id > :after ORDER BY id LIMIT :limit;

-- image_layer_ids --
SELECT layer_id FROM image_layers WHERE image_id = :image_id ORDER BY position;

-- set_scanned_config --
UPDATE images SET config_json = :config_json, config_unscanned = 0 WHERE id = :id;

-- list_images --
-- What `analyzerd images` lists: newest first, with each image's latest reference.
SELECT i.id, i.manifest_digest, i.os, i.architecture, i.variant, i.analysis_status, i.analyzed_at, i.file_count,
       (SELECT r.reference FROM image_references r WHERE r.image_id = i.id
        ORDER BY r.last_seen DESC LIMIT 1) AS reference,
       (SELECT count(*) FROM packages p WHERE p.image_id = i.id) AS packages,
       (SELECT count(*) FROM secrets s WHERE s.image_id = i.id) AS secrets
FROM images i ORDER BY i.analyzed_at DESC NULLS LAST, i.id DESC LIMIT :limit;

-- images_by_reference --
SELECT i.* FROM images i JOIN image_references r ON r.image_id = i.id
WHERE r.reference = :reference ORDER BY r.last_seen DESC, i.id DESC LIMIT :limit;

-- images_by_digest --
SELECT * FROM images WHERE manifest_digest = :digest OR index_digest = :digest
ORDER BY analyzed_at DESC NULLS LAST, id DESC LIMIT :limit;

-- images_by_digest_prefix --
-- :prefix is 'sha256:' and lowercase hex followed by '%': no LIKE wildcard of the user's.
SELECT * FROM images WHERE manifest_digest LIKE :prefix OR index_digest LIKE :prefix
ORDER BY analyzed_at DESC NULLS LAST, id DESC LIMIT :limit;

-- recent_jobs --
SELECT * FROM jobs ORDER BY id DESC LIMIT :limit;

-- recent_jobs_by_status --
SELECT * FROM jobs WHERE status = :status ORDER BY id DESC LIMIT :limit;
