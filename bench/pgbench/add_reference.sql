-- pgbench baseline of AddMultiCloudImage in the template-reference database: the statements of
-- services/templates (replica lookups, the AddReference transaction, the reply's template and
-- replica reads) as of this benchmark's writing. Variables from the driver (-D):
-- acct, ntemplates (templates t-1..t-N), mci (a replicated MCI name).
\set n random(1, 999999999999999)
\set t random(1, :ntemplates)
SELECT mci, account, display_name, state, sequence, row_version, array_to_string(head_clouds, ','), coalesce((extract(epoch FROM tombstone_time) * 1000000)::bigint, -1) FROM mci_replica WHERE mci = ANY (string_to_array(:mci, E'\x1f'));
SELECT mci, revision, array_to_string(clouds, ',') FROM mci_replica_revisions WHERE mci = ANY (string_to_array(:mci, E'\x1f'));
BEGIN;
SELECT id, version, latest_revision, display_name, description, cloned_from FROM server_templates WHERE account = :acct AND template_id = 't-' || :t FOR UPDATE \gset tpl_
SELECT pg_advisory_xact_lock(1, hashtext(:mci || :n));
SELECT deletion_id FROM mci_deletions WHERE mci = :mci AND state = 1;
SELECT state FROM mci_replica WHERE mci = :mci;
SELECT 1 FROM mci_replica_revisions WHERE mci = :mci AND revision = 1;
SELECT is_default FROM mci_references WHERE template = :tpl_id AND template_revision = 0 AND mci = :mci || '-' || :n AND mci_revision = 1;
SELECT count(*), coalesce(max(position), 0) + 1 AS pos FROM mci_references WHERE template = :tpl_id AND template_revision = 0 \gset
INSERT INTO mci_references (template, template_revision, mci, mci_revision, position, is_default) VALUES (:tpl_id, 0, :mci || '-' || :n, 1, :pos, false);
UPDATE server_templates SET version = version + 1, update_time = now() WHERE id = :tpl_id;
SELECT id, display_name, description, cloned_from, '' AS commit_message, latest_revision, version, (extract(epoch FROM create_time) * 1000000)::bigint, (extract(epoch FROM update_time) * 1000000)::bigint FROM server_templates WHERE account = :acct AND template_id = 't-' || :t;
SELECT mci, mci_revision, is_default, position FROM mci_references WHERE template = :tpl_id AND template_revision = 0 ORDER BY is_default DESC, position;
COMMIT;
SELECT mci, account, display_name, state, sequence, row_version, array_to_string(head_clouds, ','), coalesce((extract(epoch FROM tombstone_time) * 1000000)::bigint, -1) FROM mci_replica WHERE mci = ANY (string_to_array(:mci, E'\x1f'));
SELECT mci, revision, array_to_string(clouds, ',') FROM mci_replica_revisions WHERE mci = ANY (string_to_array(:mci, E'\x1f'));
