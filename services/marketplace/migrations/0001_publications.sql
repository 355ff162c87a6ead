-- Publications: frozen snapshots of published MCI revisions (revision 0 = a HEAD publication).
CREATE TABLE publications (
  seq bigserial NOT NULL UNIQUE,
  id text PRIMARY KEY,
  publisher text NOT NULL,
  multi_cloud_image text NOT NULL,
  revision bigint NOT NULL,
  lineage text NOT NULL,
  visibility text NOT NULL CHECK (visibility IN ('PUBLIC', 'SHARED')),
  display_name text NOT NULL,
  description text NOT NULL,
  -- mci.catalog.v1.MultiCloudImage, serialized.
  snapshot bytea NOT NULL,
  request_id text,
  version bigint NOT NULL DEFAULT 1,
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now()
);
-- Each committed revision is published once; HEAD may be published again after edits.
CREATE UNIQUE INDEX publications_revision_once ON publications (multi_cloud_image, revision)
  WHERE revision > 0;
CREATE UNIQUE INDEX publications_request_id ON publications (publisher, request_id)
  WHERE request_id IS NOT NULL;
CREATE INDEX publications_lineage ON publications (lineage, seq);
CREATE INDEX publications_source ON publications (multi_cloud_image, revision);

CREATE TABLE publication_shares (
  publication_id text NOT NULL REFERENCES publications (id) ON DELETE CASCADE,
  account text NOT NULL,
  PRIMARY KEY (publication_id, account)
);
CREATE INDEX publication_shares_account ON publication_shares (account);

-- One row per account and publication brought into it (by an import or an update). The MCI is
-- NULL until the catalog answered; attempt makes a fresh catalog request id after the imported
-- MCI was deleted.
CREATE TABLE imports (
  account text NOT NULL,
  publication_id text NOT NULL REFERENCES publications (id),
  multi_cloud_image text,
  attempt integer NOT NULL DEFAULT 1,
  create_time timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account, publication_id)
);
CREATE INDEX imports_publication ON imports (publication_id);

-- Every MCI of every account with its origin, fed by the catalog's events, to follow lineages
-- across accounts. Deleted MCIs stay as tombstones so that a replayed older event is ignored.
CREATE TABLE lineage_mcis (
  multi_cloud_image text PRIMARY KEY,
  account text NOT NULL,
  lineage text NOT NULL,
  origin_kind text NOT NULL,
  origin_source text NOT NULL,
  sequence bigint NOT NULL,
  deleted boolean NOT NULL DEFAULT false
);
-- Clones name their source as name@N: descendants are found by the source's HEAD name.
CREATE INDEX lineage_mcis_source ON lineage_mcis ((split_part(origin_source, '@', 1)));
CREATE INDEX lineage_mcis_lineage ON lineage_mcis (lineage);
