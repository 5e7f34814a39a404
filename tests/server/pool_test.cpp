// The server's connection pool (host/server/pool.h): bounded, idle objects
// lent most-recently-used first and checked before lending, shrinking when
// idle without traffic.
#include "host/server/pool.h"

#include <gtest/gtest.h>

#include <atomic>

#include "tests/support/child_process.h"

namespace quern::server {
namespace {

using namespace std::chrono_literals;

struct Conn {
  int id;
  bool healthy = true;
};

TEST(Pool, NeverMoreThanItsSizeAndBusyIsUnavailable) {
  std::atomic<int> made{0};
  Pool<Conn> pool([&]() -> StatusOr<std::unique_ptr<Conn>> { return std::make_unique<Conn>(Conn{++made}); },
                  {2, 1, 60s});
  auto a = pool.acquire();
  auto b = pool.acquire();
  ASSERT_TRUE(a && b);
  auto c = pool.acquire(20ms);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.code(), StatusCode::unavailable);
  EXPECT_EQ(c.message(), "all 2 database connections of this server are busy");
  EXPECT_EQ(pool.size(), 2u);
  EXPECT_EQ(made.load(), 2);
}

TEST(Pool, ReusesTheMostRecentlyReturnedAndChecksItFirst) {
  int made = 0;
  int checked = 0;
  Pool<Conn> pool([&]() -> StatusOr<std::unique_ptr<Conn>> { return std::make_unique<Conn>(Conn{++made}); },
                  {4, 1, 60s}, [&](Conn&) { ++checked; });
  {
    auto a = pool.acquire();
    auto b = pool.acquire();
    ASSERT_TRUE(a && b);
    EXPECT_EQ(checked, 0);  // new ones are not checked
  }                         // b is returned first, then a (reverse order of declaration)
  auto again = pool.acquire();
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)->id, 1);  // a, the most recently returned
  EXPECT_EQ(checked, 1);
  EXPECT_EQ(made, 2);
}

TEST(Pool, ShrinksWhenIdleWithoutTraffic) {
  std::atomic<int> alive{0};
  struct Counted {
    std::atomic<int>* alive;
    explicit Counted(std::atomic<int>* a) : alive(a) { ++*alive; }
    ~Counted() { --*alive; }
  };
  Pool<Counted> pool(
      [&]() -> StatusOr<std::unique_ptr<Counted>> { return std::make_unique<Counted>(&alive); },
      {8, 1, 200ms});
  {
    std::vector<Pool<Counted>::Lease> leases;
    for (int i = 0; i < 6; ++i) {
      auto l = pool.acquire();
      ASSERT_TRUE(l);
      leases.push_back(std::move(l).value());
    }
    EXPECT_EQ(alive.load(), 6);
  }
  EXPECT_EQ(pool.idle(), 6u);
  // No acquire from here on: the reaper alone closes what sat idle, down to one.
  ASSERT_TRUE(testing::wait_until([&] { return pool.size() == 1; }, 5s)) << pool.size();
  EXPECT_EQ(alive.load(), 1);
  EXPECT_EQ(pool.idle(), 1u);
}

TEST(Pool, AFailedFactoryDoesNotUseUpTheBudget) {
  bool fail = true;
  Pool<Conn> pool(
      [&]() -> StatusOr<std::unique_ptr<Conn>> {
        if (fail) return Status::unavailable("database away");
        return std::make_unique<Conn>(Conn{1});
      },
      {1, 1, 60s});
  for (int i = 0; i < 3; ++i) {
    auto l = pool.acquire(10ms);
    ASSERT_FALSE(l);
    EXPECT_EQ(l.message(), "database away");
  }
  fail = false;
  EXPECT_TRUE(pool.acquire(10ms));
}

}  // namespace
}  // namespace quern::server
