// The access log's words for EndReason: a stable interface (docs/access-log.md).
#include "edgeproxy/end_reason.h"

namespace edgeproxy {

const char* to_string(EndReason reason) noexcept {
  switch (reason) {
    case EndReason::kNone:
      return "-";
    case EndReason::kClientFin:
      return "client_fin";
    case EndReason::kClientReset:
      return "client_rst";
    case EndReason::kServerFin:
      return "server_fin";
    case EndReason::kServerReset:
      return "server_rst";
    case EndReason::kConnectFailed:
      return "connect_failed";
    case EndReason::kConnectTimeout:
      return "connect_timeout";
    case EndReason::kIdleTimeout:
      return "idle_timeout";
    case EndReason::kLifetimeLimit:
      return "lifetime_limit";
    case EndReason::kUploadLimit:
      return "upload_limit";
    case EndReason::kDownloadLimit:
      return "download_limit";
    case EndReason::kClientRefused:
      return "client_refused";
    case EndReason::kRouteClose:
      return "route_close";
    case EndReason::kRouteReject:
      return "route_reject";
    case EndReason::kNoRoute:
      return "no_route";
    case EndReason::kMapMiss:
      return "map_miss";
    case EndReason::kProxyHeaderError:
      return "proxy_header_error";
    case EndReason::kInspectTimeout:
      return "inspect_timeout";
    case EndReason::kForwardError:
      return "forward";
    case EndReason::kForwardDestination:
      return "forward_destination";
    case EndReason::kProtocolError:
      return "protocol_error";
    case EndReason::kNoServer:
      return "no_server";
    case EndReason::kShutdownDeadline:
      return "shutdown_deadline";
    case EndReason::kShutdownFast:
      return "shutdown_fast";
    case EndReason::kAdminKill:
      return "admin_kill";
    case EndReason::kInternalError:
      return "internal_error";
  }
  return "-";
}

}  // namespace edgeproxy
