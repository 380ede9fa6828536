# ctest helper: runs COMMAND under the environments ENV_A and ENV_B (";"-separated KEY=VALUE lists,
# "|" between variables) and fails unless both print the same standard output.
#   cmake -DCOMMAND=... -DENV_A=... -DENV_B=... -P same_output.cmake
foreach(side A B)
  string(REPLACE "|" ";" env_list "${ENV_${side}}")
  execute_process(COMMAND ${CMAKE_COMMAND} -E env ${env_list} ${COMMAND} --checksum
                  OUTPUT_VARIABLE out_${side} RESULT_VARIABLE rc_${side})
  if(NOT rc_${side} EQUAL 0)
    message(FATAL_ERROR "${COMMAND} failed under ${ENV_${side}}")
  endif()
endforeach()
if(NOT out_A STREQUAL out_B)
  message(FATAL_ERROR "different results: ${ENV_A} -> ${out_A}, ${ENV_B} -> ${out_B}")
endif()
message(STATUS "same results under ${ENV_A} and ${ENV_B}: ${out_A}")
