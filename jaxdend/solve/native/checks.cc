// Run-time checks without a host callback: jaxdend/solve/_checks.py. A callback in a program
// (as equinox's error_if uses) keeps JAX from its C++ dispatch path, which costs ~0.1 ms per
// call of a jitted simulation on CPU; this custom call returns an XLA error instead.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// The `index`-th (from 1) of the messages joined by '\x1e'.
std::string_view Message(std::string_view messages, int32_t index) {
  for (int32_t k = 1; k < index; ++k) {
    const size_t p = messages.find('\x1e');
    if (p == std::string_view::npos) return messages;
    messages.remove_prefix(p + 1);
  }
  return messages.substr(0, messages.find('\x1e'));
}

// args: code (int32, any shape: 0 fine, c > 0 message c; the largest wins), then the values
// passed through, each aliased to its result (copied only if XLA gave them apart).
ffi::Error RaiseIf(ffi::RemainingArgs args, ffi::RemainingRets rets,
                   std::string_view messages) {
  if (args.size() != rets.size() + 1) {
    return ffi::Error::InvalidArgument("jaxdend check: needs one more input than results");
  }
  auto code = args.get<ffi::AnyBuffer>(0);
  if (code.has_error()) return code.error();
  if (code->element_type() != ffi::S32) {
    return ffi::Error::InvalidArgument("jaxdend check: the code must be int32");
  }
  const int32_t* c = reinterpret_cast<const int32_t*>(code->untyped_data());
  int32_t worst = 0;
  for (size_t i = 0, n = code->element_count(); i < n; ++i) worst = c[i] > worst ? c[i] : worst;
  if (worst > 0) {  // JAX raises it as a JaxRuntimeError (INVALID_ARGUMENT would be ValueError)
    return ffi::Error(ffi::ErrorCode::kFailedPrecondition, std::string(Message(messages, worst)));
  }
  for (size_t j = 0; j < rets.size(); ++j) {
    auto x = args.get<ffi::AnyBuffer>(j + 1);
    if (x.has_error()) return x.error();
    auto y = rets.get<ffi::AnyBuffer>(j);
    if (y.has_error()) return y.error();
    if ((*y)->size_bytes() != x->size_bytes()) {
      return ffi::Error::InvalidArgument("jaxdend check: a result differs from its input");
    }
    if ((*y)->untyped_data() != x->untyped_data()) {
      std::memcpy((*y)->untyped_data(), x->untyped_data(), x->size_bytes());
    }
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendRaiseIf, RaiseIf,
                              ffi::Ffi::Bind().RemainingArgs().RemainingRets().Attr<std::string_view>(
                                  "messages"));
