-- request_id of deletes: kept past the MCI (request_ids rows go with it), so that a retry after a
-- lost answer finds the deletion done rather than NOT_FOUND. Rows older than 7 days are dropped
-- by the account's next Delete with a request_id.
CREATE TABLE deletion_requests (
  account      text NOT NULL,
  request_id   text NOT NULL,
  mci_id       text NOT NULL,
  create_time  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account, request_id)
);
