// Internal to host/config: the section parsers that live in their own files.
// Each reads one element strictly through the reader and fills `config`.
#pragma once

#include <pugixml.hpp>

#include "host/common/status.h"
#include "host/config/config.h"
#include "host/config/xml_reader.h"

namespace quern::config {

// <workers><group .../></workers> (config_workers.cpp).
Status parse_workers(const XmlReader& r, pugi::xml_node node, Config& config);
// <routing><rule .../></routing> (config_routing.cpp).
Status parse_routing(const XmlReader& r, pugi::xml_node node, Config& config);
// <limits><limit .../></limits> (config_limits.cpp).
Status parse_limits(const XmlReader& r, pugi::xml_node node, Config& config);
// <group><autoscale .../></group> into group.autoscale (config_autoscale.cpp).
Status parse_autoscale(const XmlReader& r, pugi::xml_node node, WorkerGroup& group);
// Each integration="script" command exists and is executable (after
// resolve_paths); errors name the config file and line.
Status check_autoscale_scripts(const Config& config);
// <retention completed-jobs logs/> (config_retention.cpp).
Status parse_retention(const XmlReader& r, pugi::xml_node node, Config& config);

}  // namespace quern::config
