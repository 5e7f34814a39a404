// host/cli/plugin_loading.h: which files a command loads (libquern_NAME.so
// in the directory, <plugin path> entries whatever their name), and the
// policy for a refused one: it stops the start only when a <plugin path>
// entry or the plugins list of a group the command runs needs it, else it is
// one warning. On copies of the loader's fixtures in a directory of
// their own (tests/plugin/fixtures: c_good is plugin fixture_c of language
// c-lang, duplicate is plugin fixture_good of language c-lang, bad.so is
// text).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "host/cli/plugin_loading.h"

namespace quern::cli {
namespace {

namespace fs = std::filesystem;
const fs::path kFixtures = QUERN_FIXTURE_DIR;

config::WorkerGroup group(const std::string& name, std::vector<std::string> plugins = {}) {
  config::WorkerGroup g;
  g.name = name;
  g.tags = {"c"};
  g.plugins = std::move(plugins);
  return g;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class PluginLoading : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("quern_cli_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // Copies (not links): each file its own load.
    fs::copy_file(kFixtures / "c_good.so", dir_ / "libquern_fixture_c.so");
    fs::copy_file(kFixtures / "bad.so", dir_ / "libquern_bad.so");
    fs::copy_file(kFixtures / "fixture_good.so", dir_ / "helper.so");  // a plugin, but not by its name
    cfg_.plugin_dir = dir_;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Loads for `g` and applies the policy as `quern worker` does.
  Status start(const config::WorkerGroup& g) {
    registry_ = std::make_unique<plugin::PluginRegistry>();
    report_ = load_group_plugins(cfg_, g, *registry_);
    return apply_load_policy(report_, warnings_);
  }

  fs::path dir_;
  config::Config cfg_;
  std::unique_ptr<plugin::PluginRegistry> registry_;
  LoadReport report_;
  std::vector<std::string> warnings_;

  std::string joined() const {
    std::string all;
    for (const std::string& w : warnings_) all += w + "\n";
    return all;
  }
};

TEST_F(PluginLoading, OnlyLibquernFilesOfTheDirectoryLoad) {
  ASSERT_TRUE(start(group("g")));
  EXPECT_NE(registry_->by_name("fixture_c"), nullptr);
  EXPECT_EQ(registry_->by_name("fixture_good"), nullptr);  // helper.so is not a plugin file
  EXPECT_EQ(report_.ignored, std::vector<fs::path>{dir_ / "helper.so"});
  ASSERT_EQ(report_.refused.size(), 1u);
  EXPECT_EQ(report_.refused[0].file, dir_ / "libquern_bad.so");
}

TEST_F(PluginLoading, ARefusedFileNobodyNeedsIsOneWarning) {
  ASSERT_TRUE(start(group("g")));  // no plugins list: every plugin, none needed
  ASSERT_EQ(warnings_.size(), 1u) << joined();
  const std::string& w = warnings_[0];
  EXPECT_EQ(w.rfind("plugin '" + (dir_ / "libquern_bad.so").string() + "' refused: not loadable: ", 0), 0u)
      << w;
  EXPECT_NE(w.find("skipped, as nothing in the configuration needs it"), std::string::npos) << w;
  EXPECT_NE(registry_->by_name("fixture_c"), nullptr);  // and the rest runs
}

TEST_F(PluginLoading, ARefusedFileTheGroupListsStopsTheStart) {
  Status s = start(group("g", {"fixture_c", "bad"}));
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("plugin '" + (dir_ / "libquern_bad.so").string() + "' refused: not loadable"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("(needed: worker group 'g' lists plugin 'bad')"), std::string::npos)
      << s.message();
  EXPECT_TRUE(warnings_.empty());
}

TEST_F(PluginLoading, APluginPathEntryIsNeededWhateverTheGroup) {
  cfg_.plugins.push_back({dir_ / "libquern_bad.so", "{}"});
  Status s = start(group("g"));
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("(needed: it is a <plugin path> entry)"), std::string::npos) << s.message();
  // Loaded once although it is in the directory too.
  EXPECT_EQ(report_.refused.size(), 1u);
  // `quern agent` (no group of its own) likewise.
  plugin::PluginRegistry agent;
  EXPECT_FALSE(apply_load_policy(load_plugins(cfg_, agent), warnings_));
}

TEST_F(PluginLoading, AGroupWithAListNeverTriesTheOtherFiles) {
  ASSERT_TRUE(start(group("g", {"fixture_c"})));
  EXPECT_TRUE(report_.refused.empty());
  EXPECT_TRUE(warnings_.empty());
  EXPECT_EQ(registry_->plugins().size(), 1u);
}

TEST_F(PluginLoading, AListedPluginFoundNowhereIsAnError) {
  Status s = start(group("g", {"fixture_c", "helper", "nothere"}));
  ASSERT_FALSE(s);
  EXPECT_NE(
      s.message().find("worker group 'g' enables plugin 'helper', but no libquern_helper.so was found in " +
                       dir_.string() +
                       " or among the <plugin path> entries (helper.so is there, but a plugin file is "
                       "named libquern_helper.so)"),
      std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("enables plugin 'nothere', but no libquern_nothere.so was found"),
            std::string::npos)
      << s.message();
}

TEST_F(PluginLoading, TwoPluginsForOneLanguageRefuseTheSecondNamingBoth) {
  fs::copy_file(kFixtures / "duplicate.so", dir_ / "libquern_other_c.so");  // fixture_good, c-lang
  // Nobody needs the second: a warning naming both files, the first serves.
  ASSERT_TRUE(start(group("g")));
  const std::string w = joined();
  EXPECT_NE(
      w.find("plugin '" + (dir_ / "libquern_other_c.so").string() +
             "' refused: plugin 'fixture_good' claims language 'c-lang', which plugin 'fixture_c' from '" +
             (dir_ / "libquern_fixture_c.so").string() + "' already serves"),
      std::string::npos)
      << w;
  EXPECT_EQ(registry_->for_language("c-lang")->info().name, "fixture_c");
  // A group that lists both cannot start.
  warnings_.clear();
  Status s = start(group("g", {"fixture_c", "other_c"}));
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("claims language 'c-lang'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("(needed: worker group 'g' lists plugin 'other_c')"), std::string::npos);
}

TEST_F(PluginLoading, QuernUpWarnsOnceAndStopsWhenAnyGroupNeedsTheFile) {
  // Two groups loading every plugin: one warning, not one per group.
  LoadReport merged;
  std::vector<std::unique_ptr<plugin::PluginRegistry>> registries;
  for (const auto& g : {group("a"), group("b")}) {
    registries.push_back(std::make_unique<plugin::PluginRegistry>());
    merge_reports(merged, load_group_plugins(cfg_, g, *registries.back()));
  }
  ASSERT_TRUE(apply_load_policy(merged, warnings_));
  EXPECT_EQ(warnings_.size(), 1u) << joined();

  // A third group that lists the broken plugin: whoever tried it first, it is needed.
  registries.push_back(std::make_unique<plugin::PluginRegistry>());
  merge_reports(merged, load_group_plugins(cfg_, group("c", {"bad"}), *registries.back()));
  Status s = apply_load_policy(merged, warnings_);
  ASSERT_FALSE(s);
  EXPECT_EQ(count(s.message(), "libquern_bad.so' refused"), 1u) << s.message();
  EXPECT_NE(s.message().find("(needed: worker group 'c' lists plugin 'bad')"), std::string::npos);
}

TEST_F(PluginLoading, NoDirectoryIsAnErrorUnlessThereAreEntries) {
  cfg_.plugin_dir = dir_ / "nope";
  plugin::PluginRegistry registry;
  LoadReport r = load_plugins(cfg_, registry);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].find("does not exist"), std::string::npos);
  cfg_.plugins.push_back({dir_ / "libquern_fixture_c.so", "{\"k\":\"v\"}"});
  plugin::PluginRegistry with_entry;
  r = load_plugins(cfg_, with_entry);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_NE(with_entry.by_name("fixture_c"), nullptr);
  EXPECT_EQ(plugin_configs(cfg_, with_entry).at("fixture_c"), "{\"k\":\"v\"}");
}

TEST(PluginFileNames, StandForAPluginName) {
  EXPECT_EQ(plugin_name_of_file("/x/libquern_bash.so"), "bash");
  EXPECT_EQ(plugin_name_of_file("/x/libfoo.so"), "foo");
  EXPECT_EQ(plugin_name_of_file("/x/foo.so"), "foo");
  config::Config cfg;
  cfg.plugins.push_back({"/opt/libquern_x.so", "{}"});
  const config::WorkerGroup g = group("g", {"y"});
  EXPECT_EQ(needed_by(cfg, "/opt/libquern_x.so", nullptr), "it is a <plugin path> entry");
  EXPECT_EQ(needed_by(cfg, "/d/libquern_y.so", &g), "worker group 'g' lists plugin 'y'");
  EXPECT_EQ(needed_by(cfg, "/d/libquern_y.so", nullptr), "");
  EXPECT_EQ(needed_by(cfg, "/d/libquern_z.so", &g), "");
}

}  // namespace
}  // namespace quern::cli
