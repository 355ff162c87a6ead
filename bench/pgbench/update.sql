-- pgbench ceiling of the loaded event window's writes (UpdateMultiCloudImage of a seeded MCI's
-- display name): the same transaction, rows and statements as services/catalog/catalog.cc
-- (BeginInfoEdit, CommitInfoEdit), plus the outbox relay's delete of the event row. The row is
-- written back as it was (same tuple write, HOT as the service's), so that the catalog's caches
-- stay true. Variables from the driver (-D): acct (the seeded MCIs' account), nseed (number of
-- seeded MCIs, named seed-1..seed-N), payload.
\set n random(1, 999999999999999)
\set s random(1, :nseed)
BEGIN;
SELECT m.id, m.account, m.mci_id, m.display_name, m.description, array_to_json(m.tags)::text, m.state, coalesce(m.deletion_id, ''), m.origin_kind, m.origin_source, m.origin_source_name, m.lineage, m.publication, m.source_revision, m.latest_revision, m.version, m.event_seq, array_to_json(m.head_clouds)::text, extract(epoch from m.create_time)::float8, extract(epoch from m.update_time)::float8 FROM mcis m WHERE m.account = :acct AND m.mci_id = 'seed-' || :s FOR UPDATE \gset mci_
SELECT m.id, m.account, m.mci_id, m.display_name, m.description, array_to_json(m.tags)::text, m.state, coalesce(m.deletion_id, ''), m.origin_kind, m.origin_source, m.origin_source_name, m.lineage, m.publication, m.source_revision, m.latest_revision, m.version, m.event_seq, array_to_json(m.head_clouds)::text, extract(epoch from m.create_time)::float8, extract(epoch from m.update_time)::float8, coalesce((SELECT json_agg(json_build_array(s.cloud_id, s.image_id, s.instance_type, s.kernel_id, s.ramdisk_id, s.user_data) ORDER BY s.cloud_id) FROM mci_settings s WHERE s.mci = m.id AND s.revision = 0)::text, '[]'), array_to_json(ARRAY(SELECT cloud_id FROM mci_settings WHERE mci = m.id AND revision = 0 ORDER BY cloud_id))::text, coalesce((SELECT string_agg(revision || ':' || clouds, ';' ORDER BY revision) FROM (SELECT revision, string_agg(cloud_id, ',' ORDER BY cloud_id) AS clouds FROM mci_settings WHERE mci = m.id AND revision > 0 GROUP BY revision) r), ''), extract(epoch from now())::float8 FROM mcis m WHERE m.account = :acct AND m.mci_id = 'seed-' || :s FOR UPDATE;
UPDATE mcis SET display_name = display_name, description = description, tags = tags, event_seq = event_seq + 0, version = version + 0, update_time = update_time WHERE id = :mci_id;
INSERT INTO outbox (event_id, subject, payload) VALUES ('pgu' || :n, 'mci.v1.events.updated', :payload) RETURNING id AS o1 \gset
DELETE FROM outbox WHERE id = :o1;
COMMIT;
