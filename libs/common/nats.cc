#include "libs/common/nats.h"

#include "absl/strings/str_cat.h"
#include "libs/common/log.h"

namespace mci::nats {

absl::Status ToStatus(natsStatus s, absl::string_view what) {
  if (s == NATS_OK) return absl::OkStatus();
  std::string message = absl::StrCat(what, ": ", natsStatus_GetText(s));
  switch (s) {
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NO_SERVER:
    case NATS_NOT_YET_CONNECTED:
    case NATS_TIMEOUT:
    case NATS_IO_ERROR:
    case NATS_NO_RESPONDERS:
    case NATS_STALE_CONNECTION:
      return absl::UnavailableError(message);
    case NATS_NOT_FOUND:
      return absl::NotFoundError(message);
    default:
      return absl::InternalError(message);
  }
}

std::chrono::milliseconds GatherAfterFetch(int fetched, int batch) {
  if (fetched >= batch) return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(5);
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const std::string& url,
                                                        const std::string& name,
                                                        const std::string& ca_file) {
  std::unique_ptr<Client> client(new Client());
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetURL(opts, url.c_str());
  if (s == NATS_OK) s = natsOptions_SetName(opts, name.c_str());
  // Publishes go out at once rather than after the client's 0.2-1 ms coalescing delay.
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, true);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 250);
  if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(opts, true, nullptr, nullptr);
  if (s == NATS_OK && !ca_file.empty()) {
    s = natsOptions_SetSecure(opts, true);
    if (s == NATS_OK) s = natsOptions_LoadCATrustedCertificates(opts, ca_file.c_str());
  }
  if (s == NATS_OK) {
    s = natsConnection_Connect(&client->conn_, opts);
    if (s == NATS_NOT_YET_CONNECTED) {
      log::Warn("NATS not reachable yet; connecting in the background", {{"url", url}});
      s = NATS_OK;
    }
  }
  if (s == NATS_OK) s = natsConnection_JetStream(&client->js_, client->conn_, nullptr);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) return ToStatus(s, "Cannot connect to NATS");
  return client;
}

void Client::Unsubscribe() {
  for (auto& sub : subscriptions_) {
    natsSubscription_Unsubscribe(sub->sub);
    natsSubscription_Destroy(sub->sub);
  }
  subscriptions_.clear();
}

Client::~Client() {
  Unsubscribe();
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (conn_ != nullptr) {
    natsConnection_Close(conn_);
    natsConnection_Destroy(conn_);
  }
}

absl::Status Client::Announce(const std::string& subject, const std::string& data) {
  return ToStatus(
      natsConnection_Publish(conn_, subject.c_str(), data.data(), static_cast<int>(data.size())),
      absl::StrCat("Cannot publish on ", subject));
}

absl::Status Client::Subscribe(const std::string& subject, Handler on_message) {
  auto sub = std::make_unique<Subscription>();
  sub->handler = std::move(on_message);
  natsStatus s = natsConnection_Subscribe(
      &sub->sub, conn_, subject.c_str(),
      [](natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
        const auto* self = static_cast<const Subscription*>(closure);
        self->handler(absl::string_view(natsMsg_GetData(msg),
                                        static_cast<size_t>(natsMsg_GetDataLength(msg))));
        natsMsg_Destroy(msg);
      },
      sub.get());
  if (s != NATS_OK) return ToStatus(s, absl::StrCat("Cannot subscribe to ", subject));
  subscriptions_.push_back(std::move(sub));
  return absl::OkStatus();
}

bool Client::connected() const {
  return conn_ != nullptr && natsConnection_Status(conn_) == NATS_CONN_STATUS_CONNECTED;
}

absl::Status Client::EnsureStream(const std::string& stream,
                                  const std::vector<std::string>& subjects) {
  jsStreamInfo* info = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, js_, stream.c_str(), nullptr, &err);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(info);
    return absl::OkStatus();
  }
  if (s != NATS_NOT_FOUND) return ToStatus(s, "Cannot look up the JetStream stream");
  std::vector<const char*> subject_ptrs;
  for (const auto& subj : subjects) subject_ptrs.push_back(subj.c_str());
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = stream.c_str();
  cfg.Subjects = subject_ptrs.data();
  cfg.SubjectsLen = static_cast<int>(subject_ptrs.size());
  cfg.Storage = js_FileStorage;
  cfg.Duplicates = static_cast<int64_t>(120) * 1000 * 1000 * 1000;
  s = js_AddStream(&info, js_, &cfg, nullptr, &err);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(info);
    return absl::OkStatus();
  }
  // Another replica created it meanwhile.
  if (err == JSStreamNameExistErr) return absl::OkStatus();
  return ToStatus(s, "Cannot create the JetStream stream");
}

absl::Status Client::Publish(const std::string& subject, const std::string& data,
                             const std::string& msg_id, absl::Duration timeout) {
  jsPubOptions opts;
  jsPubOptions_Init(&opts);
  opts.MsgId = msg_id.c_str();
  opts.MaxWait = absl::ToInt64Milliseconds(timeout);
  jsPubAck* ack = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_Publish(&ack, js_, subject.c_str(), data.data(), static_cast<int>(data.size()),
                            &opts, &err);
  if (ack != nullptr) jsPubAck_Destroy(ack);
  return ToStatus(s, "Cannot publish to JetStream");
}

}  // namespace mci::nats
