#include "rpc/kj_from_asio.hpp"

#include <stdexcept>

namespace vllm::rpc {

kj::Exception to_kj_exception(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const kj::Exception& e) {
    return e;
  } catch (const std::exception& e) {
    return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(e.what()));
  } catch (...) {
    return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                         kj::str("unknown exception"));
  }
}

}  // namespace vllm::rpc
