#pragma once

// gRPC adapter of mci.templates.v1.ServerTemplateService: authentication, roles and status
// mapping (libs/common/rpc.h) around ServerTemplateLogic.

#include "libs/common/auth.h"
#include "libs/common/rpc.h"
#include "mci/templates/v1/templates.grpc.pb.h"
#include "services/templates/template_logic.h"

namespace mci::templates {

// ResolveLaunch is registered raw: its cached answers go out as the bytes cached.
class TemplatesService final : public v1::ServerTemplateService::WithRawCallbackMethod_ResolveLaunch<
                                   v1::ServerTemplateService::CallbackService> {
 public:
  TemplatesService(ServerTemplateLogic* logic, const auth::Authenticator* authenticator)
      : impl_(*logic), authenticator_(*authenticator) {}

  MCI_RPC(CreateServerTemplate, v1::CreateServerTemplateRequest, v1::ServerTemplate,
          auth::Role::kDesigner)
  MCI_RPC(GetServerTemplate, v1::GetServerTemplateRequest, v1::ServerTemplate,
          auth::Role::kObserver)
  MCI_RPC(ListServerTemplates, v1::ListServerTemplatesRequest, v1::ListServerTemplatesResponse,
          auth::Role::kObserver)
  MCI_RPC(UpdateServerTemplate, v1::UpdateServerTemplateRequest, v1::ServerTemplate,
          auth::Role::kDesigner)
  MCI_RPC(DeleteServerTemplate, v1::DeleteServerTemplateRequest, google::protobuf::Empty,
          auth::Role::kDesigner)
  MCI_RPC(CloneServerTemplate, v1::CloneServerTemplateRequest, v1::ServerTemplate,
          auth::Role::kDesigner)
  MCI_RPC(CommitServerTemplate, v1::CommitServerTemplateRequest, v1::ServerTemplate,
          auth::Role::kDesigner)
  MCI_RPC(AddMultiCloudImage, v1::AddMultiCloudImageRequest, v1::ServerTemplate,
          auth::Role::kDesigner)
  MCI_RPC(RemoveMultiCloudImage, v1::RemoveMultiCloudImageRequest, v1::ServerTemplate,
          auth::Role::kDesigner)
  MCI_RPC(SetDefaultMultiCloudImage, v1::SetDefaultMultiCloudImageRequest, v1::ServerTemplate,
          auth::Role::kDesigner)
  MCI_RPC(ListMultiCloudImageUsages, v1::ListMultiCloudImageUsagesRequest,
          v1::ListMultiCloudImageUsagesResponse, auth::Role::kObserver)
  MCI_RPC(ListSupportedClouds, v1::ListSupportedCloudsRequest, v1::ListSupportedCloudsResponse,
          auth::Role::kObserver)
  // Answered from memory when the template and its MCI's answer are cached (LaunchCache), with
  // the answer's cached serialization.
  MCI_RPC_CACHED_WIRE(ResolveLaunch, v1::ResolveLaunchRequest, auth::Role::kObserver)
  MCI_RPC(ReserveMultiCloudImageDeletion, v1::ReserveMultiCloudImageDeletionRequest,
          v1::ReserveMultiCloudImageDeletionResponse, auth::Role::kService)
  MCI_RPC(ReleaseMultiCloudImageDeletion, v1::ReleaseMultiCloudImageDeletionRequest,
          google::protobuf::Empty, auth::Role::kService)

 private:
  ServerTemplateLogic& impl_;
  const auth::Authenticator& authenticator_;
};

}  // namespace mci::templates
