// Loader tests: real fixture .so files (tests/plugin/fixtures), real
// plugins (the build's plugins/ directory). No mocks.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "host/plugin/plugin_registry.h"
#include "quern/executor.h"

namespace {

namespace fs = std::filesystem;
using quern::plugin::PluginRegistry;

const fs::path kFixtures = QUERN_FIXTURE_DIR;
fs::path fixture(const std::string& name) { return kFixtures / (name + ".so"); }

// Loads one fixture into a fresh registry, expects a refusal naming the file
// and containing `reason`, and that nothing was registered.
void expect_refused(const std::string& name, const std::string& reason) {
  PluginRegistry registry;
  quern::Status s = registry.load_file(fixture(name));
  ASSERT_FALSE(s.is_ok()) << name;
  EXPECT_NE(s.message().find(fixture(name).string()), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(reason), std::string::npos) << s.message();
  EXPECT_TRUE(registry.plugins().empty());
}

// ABI stability: these offsets are the contract with already-built plugins
// (LP64). Changing any of them is an ABI break.
TEST(Abi, DescriptorAndCallbackLayoutIsStable) {
  static_assert(sizeof(void*) == 8, "offsets below are for LP64 targets");
  EXPECT_EQ(offsetof(quern_executor_descriptor, struct_size), 0u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, abi_major), 4u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, abi_minor), 6u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, name), 8u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, version), 16u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, languages), 24u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, tags), 32u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, capabilities), 40u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, create), 48u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, destroy), 56u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, prepare), 64u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, execute), 72u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, health), 80u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, interrupt), 88u);
  EXPECT_EQ(offsetof(quern_executor_descriptor, resources), 96u);  // ABI 1.1
  EXPECT_EQ(offsetof(quern_executor_descriptor, host_abi), 104u);  // ABI 1.2
  EXPECT_EQ(sizeof(quern_executor_descriptor), 112u);

  EXPECT_EQ(offsetof(quern_job_callbacks, struct_size), 0u);
  EXPECT_EQ(offsetof(quern_job_callbacks, reserved), 4u);
  EXPECT_EQ(offsetof(quern_job_callbacks, log_line), 8u);
  EXPECT_EQ(offsetof(quern_job_callbacks, progress), 16u);
  EXPECT_EQ(offsetof(quern_job_callbacks, is_cancelled), 24u);
  EXPECT_EQ(offsetof(quern_job_callbacks, set_result), 32u);
  EXPECT_EQ(offsetof(quern_job_callbacks, set_error), 40u);
  EXPECT_EQ(offsetof(quern_job_callbacks, set_process_group), 48u);
  // ABI 1.2: the job accessors.
  EXPECT_EQ(offsetof(quern_job_callbacks, field_text), 56u);
  EXPECT_EQ(offsetof(quern_job_callbacks, field_int), 64u);
  EXPECT_EQ(offsetof(quern_job_callbacks, arg_count), 72u);
  EXPECT_EQ(offsetof(quern_job_callbacks, arg_name), 80u);
  EXPECT_EQ(offsetof(quern_job_callbacks, arg_json), 88u);
  EXPECT_EQ(offsetof(quern_job_callbacks, arg_string), 96u);
  EXPECT_EQ(offsetof(quern_job_callbacks, arg_int), 104u);
  EXPECT_EQ(offsetof(quern_job_callbacks, arg_double), 112u);
  EXPECT_EQ(offsetof(quern_job_callbacks, arg_bool), 120u);
  EXPECT_EQ(offsetof(quern_job_callbacks, env_count), 128u);
  EXPECT_EQ(offsetof(quern_job_callbacks, env_entry), 136u);
  EXPECT_EQ(sizeof(quern_job_callbacks), 144u);

  EXPECT_EQ(offsetof(quern_str, data), 0u);
  EXPECT_EQ(offsetof(quern_str, size), 8u);
  EXPECT_EQ(sizeof(quern_str), 16u);
  EXPECT_EQ(sizeof(quern_errbuf), 16u);

  EXPECT_EQ(QUERN_STATUS_SUCCESS, 0);
  EXPECT_EQ(QUERN_STATUS_FAILURE, 1);
  EXPECT_EQ(QUERN_STATUS_CANCELED, 2);
  EXPECT_EQ(QUERN_STATUS_TIMEOUT, 3);
  EXPECT_EQ(QUERN_STATUS_INTERNAL, 4);
  EXPECT_EQ(QUERN_RUNNING, 0);
  EXPECT_EQ(QUERN_CANCEL_REQUESTED, 1);
  EXPECT_EQ(QUERN_TIMEOUT_REACHED, 2);
  EXPECT_EQ(QUERN_SHUTDOWN, 3);
  EXPECT_EQ(QUERN_FIELD_CODE, 1);  // ABI 1.2
  EXPECT_EQ(QUERN_FIELD_LANGUAGE, 2);
  EXPECT_EQ(QUERN_FIELD_SCRIPT_PATH, 3);
  EXPECT_EQ(QUERN_FIELD_WORKDIR, 4);
  EXPECT_EQ(QUERN_FIELD_ID, 5);
  EXPECT_EQ(QUERN_FIELD_ATTEMPT, 6);
  EXPECT_EQ(QUERN_FIELD_TIMEOUT_S, 7);
  EXPECT_EQ(QUERN_VALUE_MISSING, -1);
  EXPECT_EQ(QUERN_VALUE_WRONG_TYPE, -2);
  EXPECT_EQ(QUERN_VALUE_UNSUPPORTED, -3);
  EXPECT_STREQ(QUERN_EXECUTOR_ENTRY_V1_NAME, "quern_executor_entry_v1");
}

TEST(Registry, LoadsCpp17FixtureAndReadsItsDescriptor) {
  PluginRegistry registry;
  ASSERT_TRUE(registry.load_file(fixture("fixture_good")).is_ok());
  ASSERT_EQ(registry.plugins().size(), 1u);
  const auto& info = registry.plugins()[0]->info();
  EXPECT_EQ(info.name, "fixture_good");
  EXPECT_EQ(info.version, "2.3.4");
  EXPECT_EQ(info.abi_major, QUERN_ABI_MAJOR);
  EXPECT_EQ(info.abi_minor, QUERN_ABI_MINOR);
  // " fixture , fixture-alt ,, " → split, trimmed, empties dropped.
  EXPECT_EQ(info.languages, (std::vector<std::string>{"fixture", "fixture-alt"}));
  EXPECT_EQ(info.tags, (std::vector<std::string>{"t1", "t2"}));
  EXPECT_EQ(info.capabilities, QUERN_CAP_DEDICATED);
  EXPECT_EQ(info.file, fixture("fixture_good"));
  EXPECT_EQ(registry.by_name("fixture_good"), registry.plugins()[0].get());
  EXPECT_EQ(registry.for_language("fixture-alt"), registry.plugins()[0].get());
  EXPECT_EQ(registry.for_language("fixture "), nullptr);
}

TEST(Registry, LoadsPlainCFixture) {
  PluginRegistry registry;
  ASSERT_TRUE(registry.load_file(fixture("c_good")).is_ok());
  const auto& info = registry.plugins().at(0)->info();
  EXPECT_EQ(info.name, "fixture_c");
  EXPECT_EQ(info.languages, (std::vector<std::string>{"c-lang"}));
}

TEST(Registry, RefusesFileThatIsNotASharedLibrary) {
  // The reason includes dlerror()'s text, which names the ELF problem.
  expect_refused("bad", "not loadable: ");
  PluginRegistry registry;
  EXPECT_NE(registry.load_file(fixture("bad")).message().find("invalid ELF header"), std::string::npos);
}

TEST(Registry, RefusesMissingFile) { expect_refused("does_not_exist", "cannot open shared object file"); }

TEST(Registry, RefusesLibraryWithUndefinedSymbolAtLoad) {
  // RTLD_NOW: the unresolved reference fails the load, not the first job.
  expect_refused("undefined_symbol", "undefined symbol: quern_fixture_missing_function");
}

TEST(Registry, RefusesMissingEntrySymbol) {
  expect_refused("no_entry", "no entry symbol 'quern_executor_entry_v1'");
}

TEST(Registry, RefusesNullDescriptor) { expect_refused("null_entry", "entry function returned NULL"); }

TEST(Registry, RefusesDifferentAbiMajor) { expect_refused("wrong_major", "built for ABI 2, host speaks 1"); }

TEST(Registry, RefusesTruncatedDescriptor) {
  expect_refused("truncated", "descriptor is truncated (struct_size 8, ABI 1.0 needs at least 96)");
}

TEST(Registry, RefusesMissingExecute) { expect_refused("no_execute", "lacks required function(s): execute"); }

TEST(Registry, RefusesMissingName) { expect_refused("no_name", "descriptor has no name"); }

TEST(Registry, RefusesDuplicateNameNamingBothFiles) {
  PluginRegistry registry;
  ASSERT_TRUE(registry.load_file(fixture("fixture_good")).is_ok());
  quern::Status s = registry.load_file(fixture("duplicate"));
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find(fixture("duplicate").string()), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(fixture("fixture_good").string()), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("duplicate plugin name 'fixture_good'"), std::string::npos) << s.message();
  EXPECT_EQ(registry.plugins().size(), 1u);
  // The same file twice is a duplicate too.
  EXPECT_FALSE(registry.load_file(fixture("fixture_good")).is_ok());
  EXPECT_EQ(registry.plugins().size(), 1u);
}

TEST(Registry, RefusesASecondPluginForALanguageNamingBothFiles) {
  // c_good is plugin fixture_c, duplicate is plugin fixture_good: different
  // names, both of language c-lang. The first one loaded keeps it.
  PluginRegistry registry;
  ASSERT_TRUE(registry.load_file(fixture("c_good")).is_ok());
  quern::Status s = registry.load_file(fixture("duplicate"));
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.message(),
            "plugin '" + fixture("duplicate").string() +
                "' refused: plugin 'fixture_good' claims language 'c-lang', which plugin 'fixture_c' "
                "from '" +
                fixture("c_good").string() + "' already serves");
  EXPECT_EQ(registry.plugins().size(), 1u);
  EXPECT_EQ(registry.for_language("c-lang")->info().name, "fixture_c");
  EXPECT_EQ(registry.by_name("fixture_good"), nullptr);
}

TEST(Registry, APluginFileIsNamedLibquernName) {
  EXPECT_TRUE(PluginRegistry::is_plugin_file_name("/x/libquern_bash.so"));
  EXPECT_TRUE(PluginRegistry::is_plugin_file_name("libquern_a.so"));
  EXPECT_FALSE(PluginRegistry::is_plugin_file_name("/x/libquern_.so"));
  EXPECT_FALSE(PluginRegistry::is_plugin_file_name("/x/bash.so"));
  EXPECT_FALSE(PluginRegistry::is_plugin_file_name("/x/libbash.so"));
  EXPECT_FALSE(PluginRegistry::is_plugin_file_name("/x/libquern_bash.so.1"));
  EXPECT_FALSE(PluginRegistry::is_plugin_file_name("/x/libquern_bash.so/"));
  EXPECT_FALSE(PluginRegistry::is_plugin_file_name("/libquern_x/other.so"));
}

// A directory of copies of the fixtures under plugin file names
// (libquern_<fixture>.so), plus files that are no plugins by their name.
class FixtureDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("quern_registry_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const auto& e : fs::directory_iterator(kFixtures))
      if (e.path().extension() == ".so")
        fs::copy_file(e.path(), dir_ / ("libquern_" + e.path().filename().string()));
    // A valid plugin not named like one (a plugin's helper library, say) and a text file.
    fs::copy_file(fixture("fixture_good"), dir_ / "helper.so");
    fs::copy_file(fixture("fixture_good"), dir_ / "libfixture.so");
    std::ofstream(dir_ / "README") << "not a library\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path copy(const std::string& name) const { return dir_ / ("libquern_" + name + ".so"); }
  fs::path dir_;
};

TEST_F(FixtureDir, LoadDirectoryTriesEveryPluginFileAndReportsEachRefusal) {
  PluginRegistry registry;
  std::vector<fs::path> ignored;
  quern::Status s = registry.load_directory(dir_, &ignored);
  ASSERT_FALSE(s.is_ok());
  for (const char* bad : {"bad", "no_entry", "null_entry", "wrong_major", "truncated", "no_execute",
                          "no_name", "undefined_symbol"})
    EXPECT_NE(s.message().find(copy(bad).string() + "' refused"), std::string::npos) << bad << "\n"
                                                                                     << s.message();
  // libquern_c_good.so sorts before libquern_duplicate.so: it keeps c-lang.
  EXPECT_NE(s.message().find(copy("duplicate").string() +
                             "' refused: plugin 'fixture_good' claims language "
                             "'c-lang', which plugin 'fixture_c' from '" +
                             copy("c_good").string() + "' already serves"),
            std::string::npos)
      << s.message();
  EXPECT_NE(registry.by_name("fixture_good"), nullptr);
  EXPECT_EQ(registry.by_name("fixture_good")->info().file, copy("fixture_good"));
  EXPECT_NE(registry.by_name("fixture_c"), nullptr);
  EXPECT_EQ(registry.plugins().size(), 2u);
  // Not named libquern_*.so: never loaded, never refused, listed as ignored.
  EXPECT_EQ(s.message().find("helper.so"), std::string::npos) << s.message();
  EXPECT_EQ(ignored, (std::vector<fs::path>{dir_ / "helper.so", dir_ / "libfixture.so"}));
}

TEST_F(FixtureDir, ListDirectorySplitsPluginFilesFromOtherLibraries) {
  auto listing = PluginRegistry::list_directory(dir_);
  ASSERT_TRUE(listing.is_ok()) << listing.message();
  EXPECT_EQ(listing->ignored, (std::vector<fs::path>{dir_ / "helper.so", dir_ / "libfixture.so"}));
  ASSERT_FALSE(listing->plugins.empty());
  EXPECT_EQ(listing->plugins.front(), copy("bad"));
  for (const auto& f : listing->plugins) EXPECT_TRUE(PluginRegistry::is_plugin_file_name(f)) << f;
  EXPECT_TRUE(std::is_sorted(listing->plugins.begin(), listing->plugins.end()));
  EXPECT_FALSE(PluginRegistry::list_directory(dir_ / "nope").is_ok());
}

TEST(Registry, LoadDirectoryOfMissingDirectoryFails) {
  PluginRegistry registry;
  quern::Status s = registry.load_directory(kFixtures / "nope");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find((kFixtures / "nope").string()), std::string::npos) << s.message();
}

TEST(Registry, LoadsRealPluginDirectory) {
  PluginRegistry registry;
  quern::Status s = registry.load_directory(QUERN_PLUGIN_DIR);
  ASSERT_TRUE(s.is_ok()) << s.message();
  const auto* bash = registry.by_name("bash");
  const auto* noop = registry.by_name("noop");
  ASSERT_NE(bash, nullptr);
  ASSERT_NE(noop, nullptr);
  EXPECT_EQ(registry.for_language("bash"), bash);
  EXPECT_EQ(registry.for_language("noop"), noop);
  EXPECT_EQ(registry.for_language("cobol"), nullptr);
  EXPECT_EQ(bash->info().tags, (std::vector<std::string>{"bash"}));
  EXPECT_TRUE(bash->info().capabilities & QUERN_CAP_SPAWNS_PROCESSES);
  EXPECT_EQ(noop->info().capabilities, 0u);
}

// Whether the library at `path` is mapped in this process right now.
bool is_mapped(const fs::path& path) {
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return false;
  dlclose(h);  // drop the reference RTLD_NOLOAD took
  return true;
}

TEST(Registry, ExecutorKeepsLibraryLoadedAfterRegistryIsGone) {
  // The C fixture has no STB_GNU_UNIQUE symbols, so dlclose really unmaps it
  // once the last reference goes (C++ libraries may stay mapped forever).
  const fs::path file = fixture("c_good");
  ASSERT_FALSE(is_mapped(file));
  std::unique_ptr<quern::plugin::Executor> executor;
  {
    PluginRegistry registry;
    ASSERT_TRUE(registry.load_file(file).is_ok());
    auto created = registry.by_name("fixture_c")->create();
    ASSERT_TRUE(created.is_ok()) << created.message();
    executor = std::move(created.value());
  }
  ASSERT_TRUE(is_mapped(file));
  EXPECT_EQ(executor->info().name, "fixture_c");

  struct NullSink : quern::plugin::JobSink {
    void log_line(int32_t, std::string_view) override {}
    void progress(double) override {}
    int32_t is_cancelled() override { return QUERN_RUNNING; }
    void set_result(std::string_view json) override { result = std::string(json); }
    void set_error(std::string_view) override {}
    void set_process_group(int64_t) override {}
    std::string result;
  } sink;
  EXPECT_EQ(executor->execute("{}", sink), QUERN_STATUS_SUCCESS);
  EXPECT_EQ(sink.result, "42");

  executor.reset();
  EXPECT_FALSE(is_mapped(file));
}

}  // namespace
