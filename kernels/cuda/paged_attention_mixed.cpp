#include <string>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/paged_attention.hpp"

namespace vllm::cuda {

void paged_attention_mixed(const PagedAttentionArgs& args, int num_decode_seqs, void* workspace,
                           cudaStream_t stream) {
  require(num_decode_seqs >= 0 && num_decode_seqs <= args.num_seqs,
          "paged_attention_mixed: num_decode_seqs (" + std::to_string(num_decode_seqs) +
              ") must be in [0, num_seqs = " + std::to_string(args.num_seqs) + "]");
  PagedAttentionArgs decode = args;
  decode.num_seqs = num_decode_seqs;
  paged_attention_decode(decode, workspace, stream);
  PagedAttentionArgs prefill = args;
  prefill.num_seqs = args.num_seqs - num_decode_seqs;
  prefill.query_start_loc += num_decode_seqs;
  prefill.seq_lens += num_decode_seqs;
  prefill.block_tables += static_cast<int64_t>(num_decode_seqs) * args.max_blocks_per_seq;
  paged_attention_prefill(prefill, stream);
}

}  // namespace vllm::cuda
