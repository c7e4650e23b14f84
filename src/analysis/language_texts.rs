//! Reasoning texts shared by the language and analysis tests.

/// A chain of thought for a Chinese prompt that drifts into English for a while and back.
pub(crate) const MIXED_COT: &str = "嗯，用户问的是鸡兔同笼的问题：鸡和兔子一共有35只，脚一共有94只。\
我需要求出鸡和兔子各有多少只。\n\n首先，设鸡有x只，兔子有y只。那么x + y = 35，2x + 4y = 94。\n\n\
Let me solve this system of equations carefully. From the first equation we get that the number of \
chickens equals thirty five minus the number of rabbits. Substituting into the second equation gives \
us the answer quickly.\n\n等等，我再检查一下。把y = 12代入，x = 23，鸡的脚是46只，兔子的脚是48只，\
一共94只，正确。\n\n所以鸡有23只，兔子有12只。";

/// An English chain of thought with code, math and a few stray variable names.
pub(crate) const CODE_COT: &str = "Okay, the user wants a function that returns the largest \
element of a list. I think the simplest approach is to keep a running maximum while walking \
through the list once.\n\n```python\ndef largest(nums):\n    best = nums[0]\n    for n in nums[1:]:\n        \
if n > best:\n            best = n\n    return best  # 返回最大值\n```\n\nThe loop visits each element \
once, so the running time is $O(n)$ and `largest([3, 1, 2])` returns 3. Wait, what about an empty \
list? Then `nums[0]` raises an IndexError, so I should mention that the list must not be empty.";
