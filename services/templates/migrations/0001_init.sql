-- ServerTemplates: one row per template holding HEAD's info; committed revisions below.
CREATE TABLE server_templates (
  id               bigserial PRIMARY KEY,
  account          text NOT NULL,
  template_id      text NOT NULL,
  display_name     text NOT NULL,
  description      text NOT NULL DEFAULT '',
  cloned_from      text NOT NULL DEFAULT '',
  latest_revision  bigint NOT NULL DEFAULT 0,
  -- Bumped on every change of HEAD (its info or its references): the etag.
  version          bigint NOT NULL DEFAULT 1,
  create_time      timestamptz NOT NULL DEFAULT now(),
  update_time      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (account, template_id)
);
CREATE INDEX server_templates_account_id ON server_templates (account, id);

-- Committed revisions: immutable snapshots of HEAD's info.
CREATE TABLE server_template_revisions (
  template        bigint NOT NULL REFERENCES server_templates ON DELETE CASCADE,
  revision        bigint NOT NULL,
  display_name    text NOT NULL,
  description     text NOT NULL,
  cloned_from     text NOT NULL DEFAULT '',
  commit_message  text NOT NULL DEFAULT '',
  create_time     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (template, revision)
);

-- MCI references held by a template's HEAD (template_revision 0) and its committed revisions.
-- mci is always the MCI's HEAD name; mci_revision 0 references HEAD, N pins revision N.
CREATE TABLE mci_references (
  template           bigint NOT NULL REFERENCES server_templates ON DELETE CASCADE,
  template_revision  bigint NOT NULL,
  mci                text NOT NULL,
  mci_revision       bigint NOT NULL,
  position           integer NOT NULL,
  is_default         boolean NOT NULL DEFAULT false,
  PRIMARY KEY (template, template_revision, mci, mci_revision)
);
-- The Xref and the deletion check look references up by MCI.
CREATE INDEX mci_references_mci ON mci_references (mci, mci_revision, template, template_revision);

-- request_id of creates and clones: a retry answers the first result.
CREATE TABLE request_ids (
  account     text NOT NULL,
  request_id  text NOT NULL,
  template    bigint NOT NULL REFERENCES server_templates ON DELETE CASCADE,
  PRIMARY KEY (account, request_id)
);

-- Replica of the catalog's MCIs, fed by MCI_EVENTS (and by the catalog itself on a miss).
CREATE TABLE mci_replica (
  mci             text PRIMARY KEY,
  account         text NOT NULL,
  display_name    text NOT NULL DEFAULT '',
  -- 1 ACTIVE, 2 DELETING, 3 DELETED (tombstone): mci.events.v1.MultiCloudImageEvent.State.
  state           smallint NOT NULL,
  -- Last applied per-MCI event sequence; 0 when the row was filled from the catalog.
  sequence        bigint NOT NULL DEFAULT 0,
  -- Bumped on every change of the row: a catalog answer is written only over the row it read.
  row_version     bigint NOT NULL DEFAULT 1,
  head_clouds     text[] NOT NULL DEFAULT '{}',
  -- When the MCI was deleted: a later CREATED event under the same name is a new MCI.
  tombstone_time  timestamptz,
  update_time     timestamptz NOT NULL DEFAULT now()
);

-- Committed revisions are immutable, so rows are only ever added (or dropped with a new MCI).
CREATE TABLE mci_replica_revisions (
  mci       text NOT NULL REFERENCES mci_replica ON DELETE CASCADE,
  revision  bigint NOT NULL,
  clouds    text[] NOT NULL DEFAULT '{}',
  PRIMARY KEY (mci, revision)
);

-- The template side of the deletion saga, one row per deletion id. While a row is in state 1
-- (the fence) new references to the MCI are refused.
CREATE TABLE mci_deletions (
  deletion_id  text PRIMARY KEY,
  mci          text NOT NULL,
  -- 1 RESERVED (fence standing), 2 REFUSED, 3 DELETED, 4 ABORTED.
  state        smallint NOT NULL,
  create_time  timestamptz NOT NULL DEFAULT now(),
  update_time  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX mci_deletions_one_fence ON mci_deletions (mci) WHERE state = 1;
