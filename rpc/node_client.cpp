#include "rpc/node_client.hpp"

#include <cstring>
#include <future>
#include <map>
#include <vector>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/debug.h>

#include "rpc/kv_replay.hpp"
#include "rpc/plan_codec.hpp"
#include "rpc/remote_worker.hpp"
#include "rpc/rendezvous_service.hpp"
#include "rpc/worker_protocol.capnp.h"
#include "runtime/logging.hpp"

namespace vllm::rpc {

std::string_view node_state_name(NodeState state) {
  switch (state) {
    case NodeState::kUp:
      return "up";
    case NodeState::kDown:
      return "down";
    default:
      return "connecting";
  }
}

namespace {

// One TCP connection and the RPC system on it (the client dies before its stream).
struct Connection {
  kj::Own<kj::AsyncIoStream> stream;
  kj::Own<capnp::TwoPartyClient> client;
};

struct WorkerSlot {
  WorkerSpec spec;
  kj::Maybe<wire::Worker::Client> worker;  // none while the node is down or reopening
  uint64_t epoch = 0;                      // bumped when a restarted agent reopens it
};

int64_t count_ms(std::chrono::milliseconds ms) {
  return static_cast<int64_t>(ms.count());
}

}  // namespace

struct NodeClient::HealthBox {
  std::mutex mutex;
  NodeHealth health;
};

struct NodeClient::Link final : kj::TaskSet::ErrorHandler {
  Link(kj::AsyncIoContext& io, NodeEndpoint endpoint, HeartbeatOptions options,
       std::shared_ptr<HealthBox> box)
      : io(io), endpoint(std::move(endpoint)), options(options), box(std::move(box)) {}

  kj::AsyncIoContext& io;
  NodeEndpoint endpoint;
  HeartbeatOptions options;
  std::shared_ptr<HealthBox> box;

  NodeState state = NodeState::kConnecting;
  std::string error = "not connected yet";
  std::string down_cause;  // why it went down (error adds what reconnecting meets)
  bool closed = false;
  bool heartbeat_started = false;
  bool ever_up = false;
  uint64_t generation = 0;  // bumped on every connection loss
  std::map<uint64_t, WorkerSlot> slots;
  uint64_t next_slot = 1;
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> waiting_up;
  std::vector<std::weak_ptr<NodeClient>> peers;  // nodes whose ranks share a layout with ours

  kj::Own<Connection> connection;
  kj::Maybe<wire::NodeAgent::Client> agent;
  kj::Own<kj::Canceler> calls = kj::heap<kj::Canceler>();  // calls on the current connection
  kj::Promise<void> heartbeat = nullptr;
  kj::TaskSet tasks{*this};  // last: its promises (which use this) die first

  void taskFailed(kj::Exception&& exception) override {
    logger("rpc")->debug("node '{}': {}", endpoint.name, exception.getDescription().cStr());
  }

  kj::Timer& timer() { return io.provider->getTimer(); }
  std::string label() const { return "node '" + endpoint.name + "' (" + endpoint.address() + ")"; }
  std::string down_message() const {
    return label() + " is down: " + error + "; requests are refused until it is back";
  }

  void publish(kj::Maybe<wire::NodeStatus::Reader> status = nullptr) {
    std::lock_guard lock(box->mutex);
    box->health.state = state;
    box->health.error = state == NodeState::kUp ? "" : error;
    KJ_IF_MAYBE (s, status) {
      box->health.pid = s->getPid();
      box->health.num_workers = s->getNumWorkers();
      box->health.uptime_ms = s->getUptimeMs();
    }
  }

  void mark_up() {
    if (state != NodeState::kUp) {
      logger("rpc")->info("{} is up", label());
    }
    state = NodeState::kUp;
    error.clear();
    publish();
    for (auto& waiter : waiting_up) waiter->fulfill();
    waiting_up.clear();
  }

  // Fails every call in flight and drops the connection; the heartbeat reconnects later.
  void mark_down(const std::string& reason) {
    const bool was_up = state == NodeState::kUp;
    ever_up = ever_up || was_up;
    state = ever_up || closed ? NodeState::kDown : NodeState::kConnecting;
    if (was_up || !ever_up) {
      down_cause = reason;
      error = reason;
    } else {  // a failed reconnection: keep why it went down first
      error = down_cause + "; reconnecting: " + reason;
    }
    if (was_up) {
      logger("rpc")->warn("{}", down_message());
      // The ranks that share a layout with this node's wait for it in their collectives: fail
      // their calls now rather than when those time out.
      for (const auto& weak : peers) {
        if (auto peer = weak.lock()) {
          // FAILED, not DISCONNECTED: the peer itself is fine.
          peer->link_->calls->cancel(
              kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                            kj::str("a peer of this layout failed: ", down_message().c_str())));
        }
      }
    }
    ++generation;
    calls->cancel(kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                                kj::str(down_message())));
    calls = kj::heap<kj::Canceler>();
    agent = nullptr;
    for (auto& [id, slot] : slots) slot.worker = nullptr;
    if (connection) {
      // Not from inside the connection's own callbacks: a turn later.
      tasks.add(kj::evalLater([] {}).attach(kj::mv(connection)));
    }
    publish();
  }

  static std::string describe(const kj::Exception& e) {
    std::string text = e.getDescription().cStr();
    if (text.find("timed out") != std::string::npos) return "no answer (timed out)";
    return text;
  }

  kj::Promise<void> connect_once() {
    auto connecting = io.provider->getNetwork()
                          .parseAddress(endpoint.host, endpoint.port)
                          .then([](kj::Own<kj::NetworkAddress> address) {
                            return address->connect().attach(kj::mv(address));
                          });
    return timer()
        .timeoutAfter(count_ms(options.deadline) * kj::MILLISECONDS, kj::mv(connecting))
        .then([this](kj::Own<kj::AsyncIoStream> stream) {
          connection = kj::heap<Connection>();
          connection->stream = kj::mv(stream);
          connection->client = kj::heap<capnp::TwoPartyClient>(*connection->stream);
          agent = connection->client->bootstrap().castAs<wire::NodeAgent>();
          const uint64_t connected_generation = generation;
          tasks.add(connection->client->onDisconnect().then([this, connected_generation] {
            if (generation == connected_generation && !closed) {
              mark_down("the connection to its agent closed (the agent process died or exited)");
            }
          }));
          return ping();
        })
        .then([this] { return reopen_workers(); });
  }

  kj::Promise<void> ping() {
    KJ_IF_MAYBE (a, agent) {
      auto request = a->healthRequest();
      return timer()
          .timeoutAfter(count_ms(options.deadline) * kj::MILLISECONDS, request.send())
          .then([this](capnp::Response<wire::NodeAgent::HealthResults> response) {
            publish(response.getStatus());
          });
    }
    return KJ_EXCEPTION(DISCONNECTED, "not connected");
  }

  kj::Promise<void> reopen_workers() {
    kj::Vector<kj::Promise<void>> opening;
    KJ_IF_MAYBE (a, agent) {
      for (auto& [id, slot] : slots) {
        // A rank of a TP x PP layout cannot come back alone (its peers' groups are gone): it
        // stays lost, and its steps fail, until the cluster is restarted.
        if (slot.spec.pipeline_size * slot.spec.tensor_size > 1) continue;
        auto request = a->openWorkerRequest();
        write_worker_spec(slot.spec, request.initSpec());
        request.setRendezvous(make_rendezvous_server(timer()));
        const uint64_t slot_id = id;
        opening.add(request.send().then([this, slot_id](auto response) {
          auto it = slots.find(slot_id);
          if (it != slots.end()) {
            it->second.worker = response.getWorker();
            ++it->second.epoch;
          }
        }));
      }
    }
    if (!slots.empty()) logger("rpc")->info("{}: reopening {} workers", label(), slots.size());
    return kj::joinPromises(opening.releaseAsArray());
  }

  // One heartbeat, then the next after the interval, for as long as the link lives.
  kj::Promise<void> tick() {
    kj::Promise<void> step = nullptr;
    if (closed) return kj::NEVER_DONE;
    if (state == NodeState::kUp) {
      step = ping().catch_([this](kj::Exception&& e) {
        if (state == NodeState::kUp) {
          mark_down(e.getType() == kj::Exception::Type::DISCONNECTED
                        ? "the connection to its agent was lost (" + describe(e) + ")"
                        : "it missed its heartbeat (no answer within " +
                              std::to_string(options.deadline.count()) + " ms)");
        }
      });
    } else {
      step = connect_once().then(
          [this] { mark_up(); },
          [this](kj::Exception&& e) { mark_down("cannot connect to its agent: " + describe(e)); });
    }
    return step
        .then([this] { return timer().afterDelay(count_ms(options.interval) * kj::MILLISECONDS); })
        .then([this] { return tick(); });
  }

  void start_heartbeat() {
    if (heartbeat_started || closed) return;
    heartbeat_started = true;
    heartbeat = tick().eagerlyEvaluate([this](kj::Exception&& e) {
      logger("rpc")->error("{}: heartbeat ended: {}", label(), e.getDescription().cStr());
    });
  }

  void close() {
    closed = true;
    heartbeat = nullptr;
    error = "closed by the head";
    if (connection) tasks.add(kj::evalLater([] {}).attach(kj::mv(connection)));
    calls->cancel(kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                                kj::str(label(), " was closed")));
    agent = nullptr;
    for (auto& [id, slot] : slots) slot.worker = nullptr;
    state = NodeState::kDown;
    publish();
  }
};

NodeClient::NodeClient(std::shared_ptr<KjLoop> loop, NodeEndpoint endpoint,
                       HeartbeatOptions options)
    : loop_(std::move(loop)), endpoint_(std::move(endpoint)), options_(options) {
  box_ = std::make_shared<HealthBox>();
  box_->health.name = endpoint_.name;
  box_->health.address = endpoint_.address();
  box_->health.error = "not connected yet";
}

std::shared_ptr<NodeClient> NodeClient::create(std::shared_ptr<KjLoop> loop, NodeEndpoint endpoint,
                                               HeartbeatOptions options) {
  auto client = std::shared_ptr<NodeClient>(new NodeClient(loop, std::move(endpoint), options));
  auto box = client->box_;
  // The link is made on the loop thread and owned there; wait until it exists.
  std::promise<Link*> made;
  auto made_future = made.get_future();
  loop->post([&made, endpoint = client->endpoint_, options, box](KjContext& context) {
    made.set_value(context.keep(std::make_shared<Link>(context.io, endpoint, options, box)));
  });
  client->link_ = made_future.get();
  return client;
}

NodeClient::~NodeClient() {
  try {
    loop_->post([link = link_](KjContext& context) { context.drop(link); });
  } catch (const ActorStoppedError&) {
    // The loop has ended and destroyed the link with it.
  }
}

NodeHealth NodeClient::health() const {
  std::lock_guard lock(box_->mutex);
  NodeHealth health = box_->health;
  health.name = endpoint_.name;
  health.address = endpoint_.address();
  return health;
}

asio::awaitable<void> NodeClient::connect(std::chrono::milliseconds timeout) {
  Link* link = link_;
  auto self = shared_from_this();
  auto waiting = loop_->ask<void>([self, link, timeout](KjContext&) -> kj::Promise<void> {
    link->start_heartbeat();
    if (link->state == NodeState::kUp) return kj::READY_NOW;
    auto up = kj::newPromiseAndFulfiller<void>();
    link->waiting_up.push_back(kj::mv(up.fulfiller));
    return link->timer()
        .timeoutAfter(count_ms(timeout) * kj::MILLISECONDS, kj::mv(up.promise))
        .catch_([link, timeout](kj::Exception&&) -> kj::Promise<void> {
          return KJ_EXCEPTION(DISCONNECTED,
                              kj::str("cannot reach ", link->label().c_str(), " within ",
                                      timeout.count(), " ms: ", link->error.c_str()));
        });
  });
  co_await std::move(waiting);
}

asio::awaitable<std::pair<uint64_t, RemoteWorkerInfo>> NodeClient::open(
    WorkerSpec spec, std::shared_ptr<RendezvousService> rendezvous) {
  Link* link = link_;
  auto self = shared_from_this();
  using Opened = std::pair<uint64_t, RemoteWorkerInfo>;
  auto opening =
      loop_->ask<Opened>([self, link, spec, rendezvous](KjContext&) -> kj::Promise<Opened> {
        wire::NodeAgent::Client* agent = nullptr;
        KJ_IF_MAYBE (a, link->agent) {
          agent = a;
        }
        if (link->state != NodeState::kUp || agent == nullptr) {
          return KJ_EXCEPTION(DISCONNECTED, kj::str(link->down_message().c_str()));
        }
        auto request = agent->openWorkerRequest();
        write_worker_spec(spec, request.initSpec());
        request.setRendezvous(rendezvous ? rendezvous->client()
                                         : make_rendezvous_server(link->timer()));
        return link->calls->wrap(request.send())
            .then([link, spec](capnp::Response<wire::NodeAgent::OpenWorkerResults> response) {
              const uint64_t id = link->next_slot++;
              link->slots[id] = WorkerSlot{spec, response.getWorker(), 0};
              RemoteWorkerInfo info;
              info.num_kv_blocks = response.getInfo().getNumKvBlocks();
              info.device_name = response.getInfo().getDeviceName().cStr();
              info.num_layers = response.getInfo().getNumLayers();
              return Opened{id, info};
            })
            .catch_([link](kj::Exception&& e) -> kj::Promise<Opened> {
              return KJ_EXCEPTION(
                  FAILED,
                  kj::str(link->label().c_str(), " could not open a worker: ", e.getDescription()));
            });
      });
  co_return co_await std::move(opening);
}

asio::awaitable<std::shared_ptr<RemoteWorker>> NodeClient::open_worker(WorkerSpec spec) {
  const int32_t block_size = spec.block_size;
  auto opening = open(std::move(spec), nullptr);
  auto opened = co_await std::move(opening);
  co_return std::make_shared<RemoteWorker>(shared_from_this(), opened.first, opened.second,
                                           block_size);
}

asio::awaitable<std::shared_ptr<RemoteStageWorker>> NodeClient::open_stage_worker(
    WorkerSpec spec, std::shared_ptr<RendezvousService> rendezvous) {
  const ParallelLayout layout{spec.tensor_rank, spec.tensor_size, spec.pipeline_rank,
                              spec.pipeline_size};
  auto opening = open(std::move(spec), std::move(rendezvous));
  auto opened = co_await std::move(opening);
  co_return std::make_shared<RemoteStageWorker>(shared_from_this(), opened.first, layout,
                                                opened.second);
}

asio::awaitable<void> NodeClient::shutdown_agent(std::chrono::milliseconds timeout) {
  Link* link = link_;
  auto self = shared_from_this();
  auto stopping = loop_->ask<void>([self, link, timeout](KjContext&) -> kj::Promise<void> {
    wire::NodeAgent::Client* agent = nullptr;
    KJ_IF_MAYBE (a, link->agent) {
      agent = a;
    }
    if (agent == nullptr) {
      return KJ_EXCEPTION(DISCONNECTED, kj::str(link->down_message().c_str()));
    }
    auto request = agent->shutdownRequest();
    return link->timer()
        .timeoutAfter(count_ms(timeout) * kj::MILLISECONDS, request.send())
        .then([link](auto) { link->close(); });
  });
  co_await std::move(stopping);
}

void NodeClient::close() {
  try {
    loop_->post([link = link_](KjContext&) { link->close(); });
  } catch (const ActorStoppedError&) {
  }
}

asio::awaitable<StageOutput> NodeClient::execute(uint64_t slot,
                                                 std::shared_ptr<const SchedulerOutput> plan,
                                                 std::shared_ptr<const HostTensor> hidden_states,
                                                 std::shared_ptr<KvReplay> replay) {
  if (health().state != NodeState::kUp) {
    std::string message;
    {
      std::lock_guard lock(box_->mutex);
      message = "node '" + endpoint_.name + "' (" + endpoint_.address() +
                ") is down: " + box_->health.error + "; requests are refused until it is back";
    }
    throw NodeDownError(message);
  }
  Link* link = link_;
  auto self = shared_from_this();
  // Issued before the first suspension: steps sent one after the other keep their order.
  auto step = loop_->ask<StageOutput>([self, link, slot, plan, hidden_states,
                                       replay](KjContext&) -> kj::Promise<StageOutput> {
    auto it = link->slots.find(slot);
    wire::Worker::Client* worker = nullptr;
    if (it != link->slots.end()) {
      KJ_IF_MAYBE (w, it->second.worker) {
        worker = w;
      }
    }
    if (link->state != NodeState::kUp || worker == nullptr) {
      return KJ_EXCEPTION(DISCONNECTED, kj::str(link->down_message().c_str()));
    }
    const uint64_t epoch = it->second.epoch;
    std::shared_ptr<const SchedulerOutput> sent = plan;
    if (replay) {
      try {
        sent = replay->prepare(plan, epoch);
      } catch (const std::exception& e) {
        return KJ_EXCEPTION(FAILED, kj::str(link->label().c_str(), ": ", e.what()));
      }
    }
    auto request = worker->executeRequest();
    write_plan(*sent, request.initPlan());
    if (hidden_states) {
      auto tensor = request.initHiddenIn();
      auto shape = tensor.initShape(static_cast<unsigned>(hidden_states->shape.size()));
      for (unsigned i = 0; i < hidden_states->shape.size(); ++i) {
        shape.set(i, hidden_states->shape[i]);
      }
      // No copy: the message points at the tensor, which the promise keeps alive until the
      // answer (sent after the whole request was read).
      capnp::Data::Reader bytes(reinterpret_cast<const kj::byte*>(hidden_states->data.data()),
                                hidden_states->data.size() * sizeof(float));
      tensor.adoptData(
          capnp::Orphanage::getForMessageContaining(tensor).referenceExternalData(bytes));
    }
    const uint64_t generation = link->generation;
    return link->calls->wrap(request.send())
        .then(
            [hidden_states, replay, sent,
             epoch](capnp::Response<wire::Worker::ExecuteResults> response)
                -> kj::Promise<StageOutput> {
              if (replay) replay->committed(*sent, epoch);
              StageOutput output;
              output.step.samples = read_samples(response.getSamples());
              if (response.hasHiddenOut() && response.getHiddenOut().getData().size() > 0) {
                auto in = response.getHiddenOut();
                auto tensor = std::make_shared<HostTensor>();
                for (int64_t d : in.getShape()) tensor->shape.push_back(d);
                auto bytes = in.getData();
                tensor->data.resize(bytes.size() / sizeof(float));
                std::memcpy(tensor->data.data(), bytes.begin(), bytes.size());
                output.hidden_states = std::move(tensor);
              }
              return output;
            },
            [link, generation](kj::Exception&& e) -> kj::Promise<StageOutput> {
              if (e.getType() == kj::Exception::Type::DISCONNECTED &&
                  link->generation == generation && link->state == NodeState::kUp) {
                // Faster than waiting for the heartbeat to notice.
                link->mark_down("the connection to its agent was lost during a step (" +
                                Link::describe(e) + ")");
              }
              if (link->state != NodeState::kUp) {
                return KJ_EXCEPTION(DISCONNECTED, kj::str(link->down_message().c_str()));
              }
              return KJ_EXCEPTION(
                  FAILED, kj::str(link->label().c_str(), " failed the step: ", e.getDescription()));
            });
  });
  co_return co_await std::move(step);
}

asio::awaitable<void> NodeClient::release_worker(uint64_t slot, std::chrono::milliseconds timeout) {
  Link* link = link_;
  auto self = shared_from_this();
  auto releasing = loop_->ask<void>([self, link, slot, timeout](KjContext&) -> kj::Promise<void> {
    auto it = link->slots.find(slot);
    if (it == link->slots.end()) return kj::READY_NOW;
    kj::Maybe<wire::Worker::Client> worker = kj::mv(it->second.worker);
    link->slots.erase(it);
    KJ_IF_MAYBE (w, worker) {
      auto request = w->stopRequest();
      return link->timer()
          .timeoutAfter(count_ms(timeout) * kj::MILLISECONDS, request.send())
          .then([](auto) {}, [](kj::Exception&&) {})  // a node that is down has nothing to free
          .attach(kj::mv(worker));
    }
    return kj::READY_NOW;
  });
  co_await std::move(releasing);
}

void link_failures(const std::vector<std::shared_ptr<NodeClient>>& nodes) {
  if (nodes.empty()) return;
  std::vector<std::pair<NodeClient::Link*, std::weak_ptr<NodeClient>>> members;
  for (const auto& node : nodes) members.emplace_back(node->link_, node);
  nodes[0]->loop()->post([members](KjContext&) {
    for (const auto& [link, self] : members) {
      for (const auto& [other_link, other] : members) {
        if (other_link != link) link->peers.push_back(other);
      }
    }
  });
}

}  // namespace vllm::rpc
