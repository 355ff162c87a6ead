-- Inventory: clouds, instance types, images (public base images and accounts' private ones).
CREATE TABLE clouds (
  cloud_id      text PRIMARY KEY,
  display_name  text NOT NULL,
  provider      text NOT NULL,
  region        text NOT NULL DEFAULT ''
);

CREATE TABLE instance_types (
  cloud_id       text NOT NULL REFERENCES clouds,
  type_id        text NOT NULL,
  architectures  smallint[] NOT NULL,
  cpus           integer NOT NULL DEFAULT 0,
  memory_mb      bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (cloud_id, type_id)
);

CREATE TABLE images (
  cloud_id       text NOT NULL REFERENCES clouds,
  image_id       text NOT NULL,
  kind           smallint NOT NULL,
  provider_id    text NOT NULL,
  display_name   text NOT NULL DEFAULT '',
  os             text NOT NULL DEFAULT '',
  architecture   smallint NOT NULL DEFAULT 0,
  agent_version  text NOT NULL DEFAULT '',
  -- NULL for public images, else the owning account id.
  owner          text,
  PRIMARY KEY (cloud_id, image_id)
);

CREATE TABLE image_shares (
  cloud_id  text NOT NULL,
  image_id  text NOT NULL,
  account   text NOT NULL,
  PRIMARY KEY (cloud_id, image_id, account),
  FOREIGN KEY (cloud_id, image_id) REFERENCES images ON DELETE CASCADE
);
CREATE INDEX image_shares_account ON image_shares (account);

-- MultiCloud Images: one row per MCI holding HEAD's info; settings and revisions below.
CREATE TABLE mcis (
  id                   bigserial PRIMARY KEY,
  account              text NOT NULL,
  mci_id               text NOT NULL,
  display_name         text NOT NULL,
  description          text NOT NULL DEFAULT '',
  tags                 text[] NOT NULL DEFAULT '{}',
  -- 1 ACTIVE, 2 DELETING (mci.catalog.v1.MultiCloudImage.State).
  state                smallint NOT NULL DEFAULT 1,
  deletion_id          text,
  deletion_started_at  timestamptz,
  origin_kind          smallint NOT NULL,
  origin_source        text NOT NULL DEFAULT '',
  origin_source_name   text NOT NULL DEFAULT '',
  lineage              text NOT NULL,
  publication          text NOT NULL DEFAULT '',
  source_revision      bigint NOT NULL DEFAULT 0,
  latest_revision      bigint NOT NULL DEFAULT 0,
  -- Bumped on every change of HEAD: the etag.
  version              bigint NOT NULL DEFAULT 1,
  -- Per-MCI event sequence.
  event_seq            bigint NOT NULL DEFAULT 0,
  -- Clouds HEAD has a setting for, kept with the settings for the cloud filter.
  head_clouds          text[] NOT NULL DEFAULT '{}',
  create_time          timestamptz NOT NULL DEFAULT now(),
  update_time          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (account, mci_id)
);
CREATE INDEX mcis_account_id ON mcis (account, id);
CREATE INDEX mcis_tags ON mcis USING gin (tags);
CREATE INDEX mcis_head_clouds ON mcis USING gin (head_clouds);
CREATE INDEX mcis_lineage ON mcis (lineage, id);
CREATE INDEX mcis_deleting ON mcis (deletion_started_at) WHERE state = 2;

-- Committed revisions: immutable snapshots of HEAD's info.
CREATE TABLE mci_revisions (
  mci             bigint NOT NULL REFERENCES mcis ON DELETE CASCADE,
  revision        bigint NOT NULL,
  display_name    text NOT NULL,
  description     text NOT NULL,
  tags            text[] NOT NULL,
  commit_message  text NOT NULL DEFAULT '',
  create_time     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (mci, revision)
);

-- Settings of HEAD (revision 0) and of each committed revision: one per cloud.
CREATE TABLE mci_settings (
  mci            bigint NOT NULL REFERENCES mcis ON DELETE CASCADE,
  revision       bigint NOT NULL,
  cloud_id       text NOT NULL,
  image_id       text NOT NULL,
  instance_type  text NOT NULL,
  kernel_id      text NOT NULL DEFAULT '',
  ramdisk_id     text NOT NULL DEFAULT '',
  user_data      text NOT NULL DEFAULT '',
  PRIMARY KEY (mci, revision, cloud_id)
);

-- request_id of creates, clones and imports: a retry answers the first result.
CREATE TABLE request_ids (
  account     text NOT NULL,
  request_id  text NOT NULL,
  mci         bigint NOT NULL REFERENCES mcis ON DELETE CASCADE,
  PRIMARY KEY (account, request_id)
);

-- Transactional outbox, relayed in id order to JetStream and deleted once acked.
CREATE TABLE outbox (
  id        bigserial PRIMARY KEY,
  event_id  text NOT NULL,
  subject   text NOT NULL,
  -- The serialized mci.events.v1.MultiCloudImageEvent, base64.
  payload   text NOT NULL,
  created   timestamptz NOT NULL DEFAULT now()
);
