-- PostgreSQL's own text for the few statements where its dialect differs from SQLite's,
-- by the name of the block they replace: "migration N: VIEW" for a view that migration N
-- of schema.sql creates, else the query's name in queries.sql. Everything else in those
-- files runs on both (analyzerd/database.py maps the column types).

-- migration 1: image_files --
-- printf('%04o', mode): modes are permission bits (at most 0o7777), so four octal digits
-- (and '0000' for none, as printf prints NULL).
CREATE VIEW image_files AS
SELECT f.image_id, i.manifest_digest, f.path,
       coalesce(f.type, lf.type) AS type,
       ((coalesce(f.mode, lf.mode, 0) >> 9) & 7)::text || ((coalesce(f.mode, lf.mode, 0) >> 6) & 7)::text ||
       ((coalesce(f.mode, lf.mode, 0) >> 3) & 7)::text || (coalesce(f.mode, lf.mode, 0) & 7)::text AS mode,
       coalesce(f.uid, lf.uid) AS uid, coalesce(f.gid, lf.gid) AS gid,
       coalesce(f.size, lf.size) AS size, coalesce(f.mtime, lf.mtime) AS mtime,
       coalesce(f.link, lf.link) AS link, coalesce(f.md5, lf.md5) AS md5,
       coalesce(f.sha1, lf.sha1) AS sha1, coalesce(f.sha256, lf.sha256) AS sha256,
       l.digest AS layer_digest
FROM files f
JOIN images i ON i.id = f.image_id
JOIN layers l ON l.id = f.layer_id
LEFT JOIN layer_files lf ON lf.layer_id = f.layer_id AND lf.path = f.path;

-- migration 1: package_files --
-- Text taken out of JSON has the database's collation: "C" makes ORDER BY path sort as
-- everywhere else (by code point).
CREATE VIEW package_files AS
SELECT p.id AS package_id, p.image_id, p.type, p.name AS package,
       (f.value ->> 0) COLLATE "C" AS path, (f.value ->> 1) COLLATE "C" AS digest,
       (f.value ->> 2) COLLATE "C" AS algorithm, (f.value ->> 3) COLLATE "C" AS status
FROM packages p, json_array_elements(p.files::json) f;

-- claim_job --
-- As in queries.sql; SKIP LOCKED: daemons claiming at once each take a different job
-- instead of queueing behind one another's row lock.
UPDATE jobs
SET status = 'running', attempts = attempts + 1, started_at = :now, finished_at = NULL,
    worker = :worker, lease_until = :lease_until, progress = NULL,
    lease_expiries = lease_expiries + CASE WHEN status = 'running' THEN 1 ELSE 0 END
WHERE id = (SELECT id FROM jobs
            WHERE (status = 'queued' AND (not_before IS NULL OR not_before <= :now))
               OR (status = 'running' AND lease_until < :now AND attempts < :max_attempts)
            ORDER BY id LIMIT 1
            FOR UPDATE SKIP LOCKED)
RETURNING *;
