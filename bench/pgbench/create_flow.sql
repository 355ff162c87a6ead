-- pgbench baseline of the "Create + 3 settings + Commit" write path: the same five transactions,
-- rows and statements as services/catalog/catalog.cc (CreateMultiCloudImage, three
-- CreateMultiCloudImageSetting, CommitMultiCloudImage), plus the outbox relay's delete of each
-- event row. Variables from the driver (-D): acct, tags, payload, c1..c3 (cloud ids), i1..i3
-- (machine image ids), t1..t3 (instance types).
\set n random(1, 999999999999999)

-- CreateMultiCloudImage
BEGIN;
SELECT 1 FROM mcis WHERE account = :acct AND mci_id = 'pgb' || :n;
INSERT INTO mcis (account, mci_id, display_name, description, tags, origin_kind, origin_source, origin_source_name, lineage, publication, source_revision) VALUES (:acct, 'pgb' || :n, 'pgbench ' || :n, '', string_to_array(:tags, E'\x1f'), 1, '', '', 'accounts/' || :acct || '/multiCloudImages/pgb' || :n, '', 0) RETURNING id AS mid \gset
SELECT m.id, m.account, m.mci_id, m.display_name, m.description, array_to_json(m.tags)::text, m.state, coalesce(m.deletion_id, ''), m.origin_kind, m.origin_source, m.origin_source_name, m.lineage, m.publication, m.source_revision, m.latest_revision, m.version, m.event_seq, array_to_json(m.head_clouds)::text, extract(epoch from m.create_time)::float8, extract(epoch from m.update_time)::float8 FROM mcis m WHERE m.account = :acct AND m.mci_id = 'pgb' || :n FOR UPDATE;
UPDATE mcis SET event_seq = event_seq + 1, version = version + 0, head_clouds = ARRAY(SELECT cloud_id FROM mci_settings WHERE mci = :mid AND revision = 0 ORDER BY cloud_id), update_time = CASE WHEN 0 = 1 THEN now() ELSE update_time END WHERE id = :mid RETURNING event_seq, array_to_json(head_clouds)::text, version, coalesce((SELECT string_agg(revision || ':' || clouds, ';' ORDER BY revision) FROM (SELECT revision, string_agg(cloud_id, ',' ORDER BY cloud_id) AS clouds FROM mci_settings WHERE mci = :mid AND revision > 0 GROUP BY revision) r), '');
INSERT INTO outbox (event_id, subject, payload) VALUES ('pgb' || :n || 'a', 'mci.v1.events.created', :payload) RETURNING id AS o1 \gset
SELECT m.id, m.account, m.mci_id, m.display_name, m.description, array_to_json(m.tags)::text, m.state, coalesce(m.deletion_id, ''), m.origin_kind, m.origin_source, m.origin_source_name, m.lineage, m.publication, m.source_revision, m.latest_revision, m.version, m.event_seq, array_to_json(m.head_clouds)::text, extract(epoch from m.create_time)::float8, extract(epoch from m.update_time)::float8, r.revision IS NOT NULL, coalesce(r.display_name, ''), coalesce(r.description, ''), coalesce(array_to_json(r.tags)::text, '[]'), coalesce(r.commit_message, ''), coalesce(extract(epoch from r.create_time)::float8, 0), coalesce((SELECT json_agg(json_build_array(s.cloud_id, s.image_id, s.instance_type, s.kernel_id, s.ramdisk_id, s.user_data) ORDER BY s.cloud_id) FROM mci_settings s WHERE s.mci = m.id AND s.revision = 0)::text, '[]') FROM mcis m LEFT JOIN mci_revisions r ON r.mci = m.id AND r.revision = 0 WHERE m.account = :acct AND m.mci_id = 'pgb' || :n;
DELETE FROM outbox WHERE id = :o1;
COMMIT;

-- CreateMultiCloudImageSetting x 3
BEGIN;
SELECT m.id, m.account, m.mci_id, m.display_name, m.description, array_to_json(m.tags)::text, m.state, coalesce(m.deletion_id, ''), m.origin_kind, m.origin_source, m.origin_source_name, m.lineage, m.publication, m.source_revision, m.latest_revision, m.version, m.event_seq, array_to_json(m.head_clouds)::text, extract(epoch from m.create_time)::float8, extract(epoch from m.update_time)::float8 FROM mcis m WHERE m.account = :acct AND m.mci_id = 'pgb' || :n FOR UPDATE;
SELECT 1 FROM mci_settings WHERE mci = :mid AND revision = 0 AND cloud_id = :c1;
SELECT 1 FROM clouds WHERE cloud_id = :c1;
SELECT i.kind, i.architecture FROM images i WHERE i.cloud_id = :c1 AND i.image_id = :i1 AND (i.owner IS NULL OR i.owner = :acct OR EXISTS (SELECT 1 FROM image_shares sh WHERE sh.cloud_id = i.cloud_id AND sh.image_id = i.image_id AND sh.account = :acct));
SELECT array_to_json(architectures)::text FROM instance_types WHERE cloud_id = :c1 AND type_id = :t1;
INSERT INTO mci_settings (mci, revision, cloud_id, image_id, instance_type, kernel_id, ramdisk_id, user_data) VALUES (:mid, 0, :c1, :i1, :t1, '', '', '');
UPDATE mcis SET event_seq = event_seq + 1, version = version + 1, head_clouds = ARRAY(SELECT cloud_id FROM mci_settings WHERE mci = :mid AND revision = 0 ORDER BY cloud_id), update_time = CASE WHEN 1 = 1 THEN now() ELSE update_time END WHERE id = :mid RETURNING event_seq, array_to_json(head_clouds)::text, version, coalesce((SELECT string_agg(revision || ':' || clouds, ';' ORDER BY revision) FROM (SELECT revision, string_agg(cloud_id, ',' ORDER BY cloud_id) AS clouds FROM mci_settings WHERE mci = :mid AND revision > 0 GROUP BY revision) r), '');
INSERT INTO outbox (event_id, subject, payload) VALUES ('pgb' || :n || 'b', 'mci.v1.events.settings_changed', :payload) RETURNING id AS o2 \gset
DELETE FROM outbox WHERE id = :o2;
COMMIT;
BEGIN;
SELECT m.id, m.account, m.mci_id, m.display_name, m.description, array_to_json(m.tags)::text, m.state, coalesce(m.deletion_id, ''), m.origin_kind, m.origin_source, m.origin_source_name, m.lineage, m.publication, m.source_revision, m.latest_revision, m.version, m.event_seq, array_to_json(m.head_clouds)::text, extract(epoch from m.create_time)::float8, extract(epoch from m.update_time)::float8 FROM mcis m WHERE m.account = :acct AND m.mci_id = 'pgb' || :n FOR UPDATE;
SELECT 1 FROM mci_settings WHERE mci = :mid AND revision = 0 AND cloud_id = :c2;
SELECT 1 FROM clouds WHERE cloud_id = :c2;
SELECT i.kind, i.architecture FROM images i WHERE i.cloud_id = :c2 AND i.image_id = :i2 AND (i.owner IS NULL OR i.owner = :acct OR EXISTS (SELECT 1 FROM image_shares sh WHERE sh.cloud_id = i.cloud_id AND sh.image_id = i.image_id AND sh.account = :acct));
SELECT array_to_json(architectures)::text FROM instance_types WHERE cloud_id = :c2 AND type_id = :t2;
INSERT INTO mci_settings (mci, revision, cloud_id, image_id, instance_type, kernel_id, ramdisk_id, user_data) VALUES (:mid, 0, :c2, :i2, :t2, '', '', '');
UPDATE mcis SET event_seq = event_seq + 1, version = version + 1, head_clouds = ARRAY(SELECT cloud_id FROM mci_settings WHERE mci = :mid AND revision = 0 ORDER BY cloud_id), update_time = CASE WHEN 1 = 1 THEN now() ELSE update_time END WHERE id = :mid RETURNING event_seq, array_to_json(head_clouds)::text, version, coalesce((SELECT string_agg(revision || ':' || clouds, ';' ORDER BY revision) FROM (SELECT revision, string_agg(cloud_id, ',' ORDER BY cloud_id) AS clouds FROM mci_settings WHERE mci = :mid AND revision > 0 GROUP BY revision) r), '');
INSERT INTO outbox (event_id, subject, payload) VALUES ('pgb' || :n || 'c', 'mci.v1.events.settings_changed', :payload) RETURNING id AS o3 \gset
DELETE FROM outbox WHERE id = :o3;
COMMIT;
BEGIN;
SELECT m.id, m.account, m.mci_id, m.display_name, m.description, array_to_json(m.tags)::text, m.state, coalesce(m.deletion_id, ''), m.origin_kind, m.origin_source, m.origin_source_name, m.lineage, m.publication, m.source_revision, m.latest_revision, m.version, m.event_seq, array_to_json(m.head_clouds)::text, extract(epoch from m.create_time)::float8, extract(epoch from m.update_time)::float8 FROM mcis m WHERE m.account = :acct AND m.mci_id = 'pgb' || :n FOR UPDATE;
SELECT 1 FROM mci_settings WHERE mci = :mid AND revision = 0 AND cloud_id = :c3;
SELECT 1 FROM clouds WHERE cloud_id = :c3;
SELECT i.kind, i.architecture FROM images i WHERE i.cloud_id = :c3 AND i.image_id = :i3 AND (i.owner IS NULL OR i.owner = :acct OR EXISTS (SELECT 1 FROM image_shares sh WHERE sh.cloud_id = i.cloud_id AND sh.image_id = i.image_id AND sh.account = :acct));
SELECT array_to_json(architectures)::text FROM instance_types WHERE cloud_id = :c3 AND type_id = :t3;
INSERT INTO mci_settings (mci, revision, cloud_id, image_id, instance_type, kernel_id, ramdisk_id, user_data) VALUES (:mid, 0, :c3, :i3, :t3, '', '', '');
UPDATE mcis SET event_seq = event_seq + 1, version = version + 1, head_clouds = ARRAY(SELECT cloud_id FROM mci_settings WHERE mci = :mid AND revision = 0 ORDER BY cloud_id), update_time = CASE WHEN 1 = 1 THEN now() ELSE update_time END WHERE id = :mid RETURNING event_seq, array_to_json(head_clouds)::text, version, coalesce((SELECT string_agg(revision || ':' || clouds, ';' ORDER BY revision) FROM (SELECT revision, string_agg(cloud_id, ',' ORDER BY cloud_id) AS clouds FROM mci_settings WHERE mci = :mid AND revision > 0 GROUP BY revision) r), '');
INSERT INTO outbox (event_id, subject, payload) VALUES ('pgb' || :n || 'd', 'mci.v1.events.settings_changed', :payload) RETURNING id AS o4 \gset
DELETE FROM outbox WHERE id = :o4;
COMMIT;

-- CommitMultiCloudImage
BEGIN;
SELECT m.id, m.account, m.mci_id, m.display_name, m.description, array_to_json(m.tags)::text, m.state, coalesce(m.deletion_id, ''), m.origin_kind, m.origin_source, m.origin_source_name, m.lineage, m.publication, m.source_revision, m.latest_revision, m.version, m.event_seq, array_to_json(m.head_clouds)::text, extract(epoch from m.create_time)::float8, extract(epoch from m.update_time)::float8 FROM mcis m WHERE m.account = :acct AND m.mci_id = 'pgb' || :n FOR UPDATE;
INSERT INTO mci_revisions (mci, revision, display_name, description, tags, commit_message) VALUES (:mid, 1, 'pgbench ' || :n, '', string_to_array(:tags, E'\x1f'), 'bench');
INSERT INTO mci_settings (mci, revision, cloud_id, image_id, instance_type, kernel_id, ramdisk_id, user_data) SELECT :mid, 1, cloud_id, image_id, instance_type, kernel_id, ramdisk_id, user_data FROM mci_settings WHERE mci = :mid AND revision = 0;
UPDATE mcis SET latest_revision = 1 WHERE id = :mid;
UPDATE mcis SET event_seq = event_seq + 1, version = version + 1, head_clouds = ARRAY(SELECT cloud_id FROM mci_settings WHERE mci = :mid AND revision = 0 ORDER BY cloud_id), update_time = CASE WHEN 1 = 1 THEN now() ELSE update_time END WHERE id = :mid RETURNING event_seq, array_to_json(head_clouds)::text, version, coalesce((SELECT string_agg(revision || ':' || clouds, ';' ORDER BY revision) FROM (SELECT revision, string_agg(cloud_id, ',' ORDER BY cloud_id) AS clouds FROM mci_settings WHERE mci = :mid AND revision > 0 GROUP BY revision) r), '');
INSERT INTO outbox (event_id, subject, payload) VALUES ('pgb' || :n || 'e', 'mci.v1.events.committed', :payload) RETURNING id AS o5 \gset
SELECT m.id, m.account, m.mci_id, m.display_name, m.description, array_to_json(m.tags)::text, m.state, coalesce(m.deletion_id, ''), m.origin_kind, m.origin_source, m.origin_source_name, m.lineage, m.publication, m.source_revision, m.latest_revision, m.version, m.event_seq, array_to_json(m.head_clouds)::text, extract(epoch from m.create_time)::float8, extract(epoch from m.update_time)::float8, r.revision IS NOT NULL, coalesce(r.display_name, ''), coalesce(r.description, ''), coalesce(array_to_json(r.tags)::text, '[]'), coalesce(r.commit_message, ''), coalesce(extract(epoch from r.create_time)::float8, 0), coalesce((SELECT json_agg(json_build_array(s.cloud_id, s.image_id, s.instance_type, s.kernel_id, s.ramdisk_id, s.user_data) ORDER BY s.cloud_id) FROM mci_settings s WHERE s.mci = m.id AND s.revision = 1)::text, '[]') FROM mcis m LEFT JOIN mci_revisions r ON r.mci = m.id AND r.revision = 1 WHERE m.account = :acct AND m.mci_id = 'pgb' || :n;
DELETE FROM outbox WHERE id = :o5;
COMMIT;
